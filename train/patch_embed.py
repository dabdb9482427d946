"""The ViT's patch embedding as one matrix product instead of a convolution.

open_clip's VisionTransformer cuts the image into patches with `conv1`, a convolution whose
stride equals its kernel (no padding, no bias). That is a linear map of each flattened patch:
the same sums, so the same features and gradients up to rounding. On the CPU, oneDNN's
backward of that convolution is slow: ViT-B/32, 32 images at 224 px under bf16 autocast,
forward + backward of the layer 284 ms against 19 ms for the product with the patches laid out
as rows (bench/ab_step.py times both), a tenth of the whole training step. On a GPU both are
fast.

`enable(model)` swaps the convolution's forward in place; the weight stays the same tensor
under the same name, so checkpoints, exports and the optimizer see nothing new."""
import types

import torch


def enable(model) -> bool:
    """Patch model.visual.conv1's forward when it is a stride-equals-kernel patch
    convolution; returns whether it was patched."""
    conv = getattr(getattr(model, "visual", None), "conv1", None)
    if not (isinstance(conv, torch.nn.Conv2d) and conv.stride == conv.kernel_size and conv.bias is None
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros"):
        return False
    conv.forward = types.MethodType(_patches_times_weight, conv)
    return True


def _patches_times_weight(self, x):
    """conv1(x) for a [B, C, H, W] image: [B, width, H // p, W // p], as the convolution gives
    (which leaves out the last H % p rows and W % p columns)."""
    ph, pw = self.kernel_size
    b, c, h, w = x.shape
    gh, gw = h // ph, w // pw
    x = x[:, :, :gh * ph, :gw * pw]
    patches = x.reshape(b, c, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(b * gh * gw, c * ph * pw)
    weight = self.weight.reshape(self.out_channels, c * ph * pw)
    # torch.nn.functional.linear: autocast casts it as it casts the convolution
    out = torch.nn.functional.linear(patches, weight)
    return out.reshape(b, gh, gw, self.out_channels).permute(0, 3, 1, 2)
