"""Standalone espeak-ng worker: synthesises a list of sentences and returns PCM plus WORD/PHONEME events.

Run as a script (`python -I -S _espeak_worker.py`) with a JSON request on stdin:
`{"utterances": [{"text": str, "voice": str, "rate": int, "pitch": int, "range": int}, ...]}`.
It writes one JSON line `{"items": [{"samples": int, "events": [[type, text_pos, length, sample, phone]]}]}`
followed by the concatenated 16-bit little-endian PCM of all items, at 22,050 Hz.

espeak-ng keeps synthesis state between calls (the pitch-flutter phase and the glottal wave phase are
static variables that are never reset), so the samples of a sentence depend on everything the process
synthesised before. A fresh worker per batch makes a batch's audio depend on the batch alone.
This file imports nothing outside the standard library so that it starts in a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys

SAMPLE_RATE = 22050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_PARAMS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _fail(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.exit(2)


def _voice_file_name(name: str) -> str:
    # espeak-ng files British English as `en`; accept the language tag `en-gb` (with a variant) too
    base, plus, variant = name.partition("+")
    if base.lower() in ("en-gb", "en-uk"):
        base = "en"
    return base + plus + variant


def main() -> None:
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        _fail(
            f"cannot load the espeak-ng library ({path}): {err}. Install it, e.g. `apt-get install espeak-ng` "
            "(Debian/Ubuntu) or `brew install espeak-ng` (macOS)."
        )
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_Callback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
    if rate != SAMPLE_RATE:
        _fail(f"espeak-ng initialisation failed (returned {rate}); check that espeak-ng-data is installed")
    libc = ctypes.CDLL(None)
    chunks: list[bytes] = []
    events: list[list] = []

    def on_audio(wav, n, evs) -> int:  # noqa: ANN001 (ctypes callback)
        if n > 0:
            chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while evs[i].type != _EVENT_LIST_TERMINATED:
            ev = evs[i]
            if ev.type in (_EVENT_WORD, _EVENT_PHONEME, _EVENT_END):
                phone = ev.id.string.decode("ascii", "replace") if ev.type == _EVENT_PHONEME else ""
                events.append([ev.type, ev.text_position, ev.length, ev.sample, phone])
            i += 1
        return 0

    callback = _Callback(on_audio)
    lib.espeak_SetSynthCallback(callback)
    items = []
    pcm: list[bytes] = []
    for utt in request["utterances"]:
        voice = _voice_file_name(str(utt["voice"]))
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            _fail(f"espeak-ng has no voice {utt['voice']!r}; list the installed ones with `espeak-ng --voices=en`")
        for key, value in (("rate", utt["rate"]), ("pitch", utt["pitch"]), ("range", utt["range"]), ("volume", 100)):
            lib.espeak_SetParameter(_PARAMS[key], int(value), 0)
        libc.srand(0)  # espeak-ng 1.51 draws noise from libc rand()
        chunks.clear()
        events.clear()
        data = str(utt["text"]).encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        err = lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            _fail(f"espeak_Synth failed with error {err} on {utt['text']!r}")
        lib.espeak_Synchronize()
        audio = b"".join(chunks)
        items.append({"samples": len(audio) // 2, "events": list(events)})
        pcm.append(audio)
    out = sys.stdout.buffer
    out.write(json.dumps({"items": items}).encode("utf-8") + b"\n")
    for audio in pcm:
        out.write(audio)
    out.flush()


if __name__ == "__main__":
    main()
