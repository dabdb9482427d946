"""The ViT's patch convolution as one matrix product (train/patch_embed.py): the same features
and gradients as the convolution, the same parameters, and models it does not fit left alone."""
import copy

import pytest
import torch

from assert_lib import assert_same_gradients
from train import models, patch_embed


def test_the_model_gives_the_same_features_and_gradients():
    torch.manual_seed(0)
    model = models.create("hnclip-tiny")[0].double()
    patched = copy.deepcopy(model)
    assert patch_embed.enable(patched)
    assert list(patched.state_dict()) == list(model.state_dict())
    images = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    a, b = model.encode_image(images), patched.encode_image(images)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    (a ** 2).sum().backward()
    (b ** 2).sum().backward()
    assert_same_gradients(model, patched)


@pytest.mark.parametrize("size", [(64, 64), (70, 67)])
def test_the_convolution_alone_also_off_the_patch_grid_and_under_bf16(size):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8, bias=False)
    x = torch.randn(2, 3, *size)
    want = conv(x)
    holder = torch.nn.Module()
    holder.visual = torch.nn.Module()
    holder.visual.conv1 = copy.deepcopy(conv)
    assert patch_embed.enable(holder)
    got = holder.visual.conv1(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want16, got16 = conv(x), holder.visual.conv1(x)
    assert got16.dtype == want16.dtype == torch.bfloat16
    torch.testing.assert_close(got16.float(), want16.float(), rtol=0.02, atol=0.02)


def test_other_convolutions_are_left_alone():
    holder = torch.nn.Module()
    holder.visual = torch.nn.Module()
    holder.visual.conv1 = torch.nn.Conv2d(3, 16, kernel_size=8, stride=4, bias=False)  # overlapping patches
    assert not patch_embed.enable(holder)
    assert "forward" not in vars(holder.visual.conv1)
    holder.visual.conv1 = torch.nn.Conv2d(3, 16, kernel_size=8, stride=8, bias=True)
    assert not patch_embed.enable(holder)
    assert not patch_embed.enable(torch.nn.Linear(2, 2))  # no vision tower at all
