"""A toy encoder whose right answers are known in advance (big_vision's trick), for tests.

A `World` hands out integer tags. Every toy image is one solid colour that encodes an image id;
the world remembers which tags each image id carries. A caption (any text) is one tag. The
encoder embeds an image as the normalised sum of one-hot vectors of its tags and a text as the
one-hot of its tag, so s(image, text) > 0 exactly when the text is one of the image's tags:
  oracle   -> every right candidate strictly wins (every metric 100)
  reversed -> image embeddings negated: every right candidate strictly loses (every metric 0)
  constant -> every embedding equal: every comparison ties (every metric 0, since ties are wrong)."""
import torch
from PIL import Image

LEVELS = 16  # colour levels per channel: 4,096 image ids, robust to JPEG at quality 95


class World:
    def __init__(self, dim=4096):
        self.dim = dim
        self.text_tags = {}
        self.image_tags = []

    def tag(self, text: str) -> int:
        if text not in self.text_tags:
            if len(self.text_tags) >= self.dim:
                raise ValueError("toy world: out of tags")
            self.text_tags[text] = len(self.text_tags)
        return self.text_tags[text]

    def image(self, texts, size=16) -> Image.Image:
        """A new image that the given texts (and nothing else) describe."""
        n = len(self.image_tags)
        if n >= LEVELS ** 3:
            raise ValueError("toy world: out of image ids")
        self.image_tags.append([self.tag(t) for t in texts])
        return Image.new("RGB", (size, size), colour(n))


def colour(n):
    step = 256 // LEVELS
    return tuple(step // 2 + step * ((n // LEVELS ** c) % LEVELS) for c in range(3))


def decode(img: Image.Image) -> int:
    step = 256 // LEVELS
    pixels = torch.tensor(list(img.convert("RGB").getdata()), dtype=torch.float)
    r, g, b = (int(v) for v in pixels.mean(0).round())
    return sum(min(LEVELS - 1, v // step) * LEVELS ** c for c, v in enumerate((r, g, b)))


class ToyEncoder(torch.nn.Module):
    def __init__(self, world: World, mode="oracle"):
        super().__init__()
        if mode not in ("oracle", "reversed", "constant"):
            raise ValueError(mode)
        self.world, self.mode = world, mode

    def preprocess(self, img):
        return torch.tensor([decode(img)])

    def tokenizer(self, texts):
        return torch.tensor([[self.world.tag(t)] for t in texts])

    def _embed(self, tags_per_row):
        x = torch.zeros(len(tags_per_row), self.world.dim)
        for r, tags in enumerate(tags_per_row):
            x[r, tags] = 1.0
        if self.mode == "constant":
            x = torch.ones_like(x)
        return x / x.norm(dim=-1, keepdim=True)

    def encode_image(self, x, normalize=True):
        e = self._embed([self.world.image_tags[int(i)] for i in x[:, 0]])
        return -e if self.mode == "reversed" else e

    def encode_text(self, tokens, normalize=True):
        return self._embed([[int(t)] for t in tokens[:, 0]])
