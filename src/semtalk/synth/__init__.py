"""A self-generated co-speech dataset in BEAT2's layout: espeak-ng speech with word timings, and SMPL-X
motion generated from that speech by fixed, checkable rules (`motion.py`, `gestures.py`).

Entry point: `semtalk.synth.dataset.make_dataset`. Modules: `speech` (espeak-ng synthesis with word and
phone timings), `script` (sentences), `style` (speakers), `skeleton` (rest skeleton, FK and IK),
`gestures` (semantic gesture library), `motion` (motion from speech), `clip` (one clip), `annotation`
(TextGrid and sem files), `files` (atomic, reproducible writers), `dataset` (the writer).
"""
