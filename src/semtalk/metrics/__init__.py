"""Evaluation metrics of the BEAT2 protocol (FGD, BC, Diversity, face MSE, LVD) and Sem-gate accuracy,
under two profiles: `semtalk2024` (reproduces the published numbers, quirks included) and `corrected`; and
synchrony measures beyond BC (BC contrast, lip-sync and gesture-sync correlation curves).
"""

from semtalk.metrics.beat_consistency import (
    audio_onsets,
    beat_score,
    file_beat_consistency,
    gahr,
    joint_speed,
    load_bc_audio,
    motion_beats,
    prepare_bc_audio,
)
from semtalk.metrics.diversity import diversity, l1_deviation
from semtalk.metrics.evaluate import evaluate_folder
from semtalk.metrics.face import face_mse, lvd
from semtalk.metrics.fgd_encoder import FGDAutoencoder, load_fgd_encoder, random_fgd_encoder
from semtalk.metrics.frechet import frechet_distance, frechet_distance_from_stats
from semtalk.metrics.gate import gate_accuracy, gate_targets
from semtalk.metrics.motion_inputs import body_joints, face_vertices, fgd_rot6d
from semtalk.metrics.profiles import (
    CORRECTED,
    PROFILES,
    SEMTALK2024,
    MetricProfile,
    evaluation_length,
    fgd_length,
    generated_length,
    get_profile,
)
from semtalk.metrics.synchrony import (
    BCContrastResult,
    SyncCurve,
    bc_at_offsets,
    bc_contrast,
    combine_curves,
    gesture_sync,
    lipsync,
    sync_curve,
)
from semtalk.metrics.synchrony_metrics import BCContrast, GestureSync, LipSync
from semtalk.metrics.tables import metrics_table
from semtalk.metrics.torchmetrics_impl import FGD, LVD, BeatConsistency, Diversity, FaceMSE, GateAccuracy

__all__ = [
    "CORRECTED",
    "FGD",
    "LVD",
    "PROFILES",
    "SEMTALK2024",
    "BCContrast",
    "BCContrastResult",
    "BeatConsistency",
    "Diversity",
    "FGDAutoencoder",
    "FaceMSE",
    "GateAccuracy",
    "GestureSync",
    "LipSync",
    "MetricProfile",
    "SyncCurve",
    "audio_onsets",
    "bc_at_offsets",
    "bc_contrast",
    "beat_score",
    "body_joints",
    "combine_curves",
    "diversity",
    "evaluate_folder",
    "evaluation_length",
    "face_mse",
    "face_vertices",
    "fgd_length",
    "fgd_rot6d",
    "file_beat_consistency",
    "frechet_distance",
    "frechet_distance_from_stats",
    "gahr",
    "gate_accuracy",
    "gate_targets",
    "generated_length",
    "gesture_sync",
    "get_profile",
    "joint_speed",
    "l1_deviation",
    "lipsync",
    "load_bc_audio",
    "load_fgd_encoder",
    "lvd",
    "metrics_table",
    "motion_beats",
    "prepare_bc_audio",
    "random_fgd_encoder",
    "sync_curve",
]
