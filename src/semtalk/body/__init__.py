"""The SMPL-X body: joint order, part groups, rotation conversions, foot contact and the body model."""

from semtalk.body.joints import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS, SAMPLE_RATE
from semtalk.body.parts import (
    LATENT_ALL_DIM,
    PART_DIMS,
    PART_JOINTS,
    PART_NAMES,
    SMPLXParams,
    latent_all,
    merge_parts,
    split_parts,
)

__all__ = [
    "FPS",
    "JOINT_NAMES",
    "LATENT_ALL_DIM",
    "NUM_JOINTS",
    "PARENTS",
    "PART_DIMS",
    "PART_JOINTS",
    "PART_NAMES",
    "SAMPLE_RATE",
    "SMPLXParams",
    "latent_all",
    "merge_parts",
    "split_parts",
]
