"""semtalk: holistic co-speech motion generation with frame-level semantic emphasis."""

__version__ = "0.1.0"
