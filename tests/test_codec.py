"""The frozen stage-1 codec: loading by path with compatibility checks, encode/decode, SMPL-X output."""

import pytest
import torch

from motion_fixtures import PartWindows, train_tiny_stage1
from semtalk.codec import MotionCodec, load_tokenizer


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    return train_tiny_stage1(tmp_path_factory.mktemp("stage1"))


def test_codec_round_trip(stage1):
    vq = {p: stage1[p] for p in ("face", "upper", "hands", "lower")}
    codec, cards = MotionCodec.from_checkpoints(vq, stage1["global_motion"], num_quantizers=3, codebook_size=16)
    assert cards["hands"]["part"] == "hands" and len(cards["hands"]["sha256"]) == 64
    batch = torch.utils.data.default_collate([PartWindows(2, 32)[i] for i in range(2)])
    parts = {p: batch[p] for p in vq}
    codes = codec.encode(parts)
    assert all(c.shape == (2, 8, 3) and c.dtype == torch.int64 for c in codes.values())
    assert codec.level_codes("upper", codes["upper"]).shape == (2, 8, 3, 16)
    decoded = codec.decode(codes)
    assert {p: x.shape for p, x in decoded.items()} == {p: x.shape for p, x in parts.items()}
    params = codec.to_smplx(decoded, start_trans=torch.zeros(2, 3))
    assert params.poses.shape == (2, 32, 165) and params.trans.shape == (2, 32, 3)
    assert torch.equal(params.trans[:, 0, [0, 2]], torch.zeros(2, 2))  # integrated from the start position
    # frozen: no trainable parameters, eval mode survives .train(), codebooks do not move on forward
    assert not any(p.requires_grad for p in codec.parameters())
    codec.train()
    assert not codec.training and not codec.tokenizers["face"].quantizer.training
    before = codec.tokenizers["face"].quantizer.codebooks.clone()
    codec.tokenizers["face"](parts["face"])
    assert torch.equal(before, codec.tokenizers["face"].quantizer.codebooks)


def test_incompatible_tokenizers_are_refused(stage1):
    with pytest.raises(ValueError, match="part: checkpoint has 'upper', expected 'face'"):
        load_tokenizer(stage1["upper"], part="face")
    with pytest.raises(ValueError, match="num_quantizers: checkpoint has 3, expected 6"):
        load_tokenizer(stage1["face"], part="face", num_quantizers=6)
    with pytest.raises(ValueError, match="not a stage-1 tokenizer"):
        load_tokenizer(stage1["global_motion"])
    swapped = {"face": stage1["face"], "upper": stage1["hands"], "hands": stage1["hands"], "lower": stage1["lower"]}
    with pytest.raises(ValueError, match="expected 'upper'"):
        MotionCodec.from_checkpoints(swapped)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_tokenizer(stage1["face"] + ".missing")
