"""Feature extractors: one class per feature, each either pretrained (local weights only) or tiny random.

| extractor  | outputs (T frames at 30 fps)                                      | source        |
|------------|-------------------------------------------------------------------|---------------|
| motion     | poses (T,165), trans (T,3), expressions (T,100), betas (300,), contact (T,4), speaker (1,) | npz |
| hubert     | hubert (T, D)                                                     | wav           |
| beat       | beat (T, 3): amplitude, energy, onsets                            | wav           |
| words      | words (T,) vocabulary index                                       | TextGrid      |
| semantic   | sem (T,) semantic score                                           | sem txt       |
| clip_text  | clip_text (windows, Dc), clip_text_gen (generation windows, Dc)   | TextGrid      |
| emotion    | emotion (T, De) emotion2vec frame features                        | wav           |
"""

from semtalk.features.base import ClipInput, common_frames
from semtalk.features.beat import BeatFeatures
from semtalk.features.clip_text import ClipTextFeatures
from semtalk.features.emotion import EmotionFeatures
from semtalk.features.hubert import HubertFeatures
from semtalk.features.motion import MotionFeatures
from semtalk.features.registry import EXTRACTORS, load_extractor_config, plan_extractors
from semtalk.features.semantic import SemanticFeatures, frame_scores, token_means
from semtalk.features.vocab import Vocab, load_vocab_pkl
from semtalk.features.weights import MissingWeightsError
from semtalk.features.words import WordFeatures, frame_word_indices

__all__ = [
    "EXTRACTORS",
    "BeatFeatures",
    "ClipInput",
    "ClipTextFeatures",
    "EmotionFeatures",
    "HubertFeatures",
    "MissingWeightsError",
    "MotionFeatures",
    "SemanticFeatures",
    "Vocab",
    "WordFeatures",
    "common_frames",
    "frame_scores",
    "frame_word_indices",
    "load_extractor_config",
    "load_vocab_pkl",
    "plan_extractors",
    "token_means",
]
