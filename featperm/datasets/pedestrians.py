"""A procedurally drawn pedestrian-attribute dataset, built in (nothing is downloaded).

:func:`synthetic_pedestrians` draws person-like figures in the spirit of the Market-1501 /
DukeMTMC-reID attribute annotations and returns an
:class:`~featperm.datasets.attributes.AttributeImages`:

* ``images`` (N, 3, H, W) uint8 RGB with N = num_identities * images_per_identity,
* ``identities`` (N,) int64 in 0..num_identities-1, each repeated images_per_identity times
  (contiguous: rows ``i*images_per_identity .. (i+1)*images_per_identity-1`` show identity i),
* ``cameras`` (N,) int64 in 0..CAMERAS[domain]-1,
* ``attributes[name]`` (N,) int64 class indices into ``ATTRIBUTE_CLASSES[name]`` (never missing),
  constant within an identity.

What each attribute looks like (figure coordinates: 0 at the top of the head, 1 at the soles):

* ``gender``: body shape; male = broad shoulders and narrow hips, female = narrow shoulders and
  wider hips, a little shorter. Correlates with hair, lower_type and the bags as in real data.
* ``hair``: short = a cap of hair on top of the head; long = hair framing the face and falling
  to the shoulders (from behind it covers the upper back).
* ``sleeve``: long = the arms are in the upper colour down to the hands; short = only the upper
  arm is, the forearms show skin.
* ``lower_length``: long = trousers to the ankles or a dress to the shins; short = shorts or a
  skirt to the knees with bare legs below.
* ``lower_type``: pants = two legs; dress = a trapezoid (dress or skirt) in the lower colour.
* ``hat``: a coloured crown on top of the head with a brim wider than the head.
* ``backpack``: seen from behind a large box on the back; from the front two straps over the
  shoulders and the pack sticking out above the shoulders and beside the arms.
* ``bag``: a shoulder bag, a box at the hip on one side with a strap across the torso.
* ``handbag``: a small box with a handle hanging from one hand.
* ``upper_colour`` / ``lower_colour``: the colour class of the top (torso and sleeves) and of
  the trousers/shorts/dress.

Each identity also has fixed details of its own, so that identities are separable beyond their
attributes: the exact shades of its clothes, a shirt pattern (plain, stripes or a chest logo),
skin tone, hair shade, body height and width, shoe colour, the colours of its bags and the side
it carries them on. Each image varies in view (front or back, which mirrors the bag side), pose
(position, scale, lean, stride, arm swing), lighting (camera-dependent brightness and colour cast
plus per-image changes), background, blur and noise.

Domains (:data:`DOMAINS`), in which the attributes keep their meaning:

* ``"mall"`` (0): bright, neutral light-grey/beige indoor walls with panels and a tiled floor,
  soft neutral light, figures large and centred, 6 cameras (like Market-1501).
* ``"street"`` (1): textured outdoor scenes (coloured blocks of buildings and cars with stripes,
  greenery, asphalt or pavement, sometimes a crossing), warmer, darker and more varied light,
  figures smaller and off-centre, 8 cameras. A hard shift, far beyond that between two real
  re-ID datasets.
* ``"campus"`` (2): outdoor daylight scenes that are calm like the mall's: a building wall
  (concrete, brick, sandstone), often with a low-contrast grid of windows, above a lawn and a
  paved path, now and then a tree and a cast shadow; moderately textured. Cooler (bluish)
  daylight whose exposure varies from camera to camera (not dark), a little more blur and noise;
  figures of the mall's framing, slightly smaller and less centred; 5 cameras. The attribute
  priors differ a little (e.g. more backpacks, fewer short sleeves and dresses). This is the
  moderate shift between two real datasets (like Market-1501 vs DukeMTMC-reID).

The images are drawn with vectorised torch code (coordinate grids and soft masks composited
over the whole batch, in cache-sized chunks); the result depends only on the arguments (same
tensors, bit for bit, on every call, whatever the number of threads, on the same torch version).
100 identities x 20 images at 64x32 take about 0.5 s on one CPU core, 4x the pixels about 4x that.
"""

from __future__ import annotations

import hashlib
import math
import operator
from typing import Dict, List, Tuple, Union

import torch
import torch.nn.functional as F

from featperm.datasets.attributes import AttributeImages

__all__ = ["ATTRIBUTE_CLASSES", "DOMAINS", "CAMERAS", "synthetic_pedestrians"]

ATTRIBUTE_CLASSES: Dict[str, Tuple[str, ...]] = {
    "gender": ("male", "female"),
    "hair": ("short", "long"),
    "sleeve": ("long", "short"),
    "lower_length": ("long", "short"),
    "lower_type": ("pants", "dress"),
    "hat": ("no", "yes"),
    "backpack": ("no", "yes"),
    "bag": ("no", "yes"),
    "handbag": ("no", "yes"),
    "upper_colour": ("black", "white", "red", "purple", "yellow", "gray", "blue", "green"),
    "lower_colour": ("black", "white", "pink", "purple", "yellow", "gray", "blue", "green", "brown"),
}
"""The attributes and their classes (label k of attribute a means ``ATTRIBUTE_CLASSES[a][k]``)."""

DOMAINS: Dict[str, int] = {"mall": 0, "street": 1, "campus": 2}
"""The domains by name; ``synthetic_pedestrians(domain=...)`` takes the name or the number."""

CAMERAS: Dict[str, int] = {"mall": 6, "street": 8, "campus": 5}
"""The number of cameras of each domain (``cameras`` runs over 0..CAMERAS[domain]-1)."""

_WHERE = "synthetic_pedestrians"
_CHUNK_PIXELS = 2**19  # images are drawn in chunks of about this many pixels (fit in caches)

# Base RGB of each colour class; every identity gets its own shade around it.
_UPPER_RGB = [
    (28, 28, 32),  # black
    (232, 232, 226),  # white
    (200, 32, 38),  # red
    (118, 48, 150),  # purple
    (232, 200, 40),  # yellow
    (128, 128, 128),  # gray
    (40, 72, 180),  # blue
    (40, 140, 60),  # green
]
_LOWER_RGB = [
    (28, 28, 32),  # black
    (232, 232, 226),  # white
    (236, 140, 172),  # pink
    (118, 48, 150),  # purple
    (232, 200, 40),  # yellow
    (128, 128, 128),  # gray
    (46, 70, 150),  # blue
    (40, 140, 60),  # green
    (112, 72, 40),  # brown
]
# Class frequencies roughly as in the Market-1501 / DukeMTMC attribute annotations.
_UPPER_WEIGHTS = [0.18, 0.24, 0.10, 0.06, 0.07, 0.14, 0.13, 0.08]
_LOWER_WEIGHTS_PANTS = [0.32, 0.06, 0.02, 0.03, 0.03, 0.16, 0.28, 0.04, 0.06]
_LOWER_WEIGHTS_DRESS = [0.22, 0.16, 0.18, 0.12, 0.07, 0.06, 0.10, 0.04, 0.05]

_SKIN_LIGHT = (236, 198, 168)
_SKIN_DARK = (112, 74, 50)
_HAIR_RGB = [(24, 20, 18), (62, 40, 26), (108, 72, 42), (188, 158, 100)]
_HAIR_WEIGHTS = [0.5, 0.28, 0.14, 0.08]
_SHOE_RGB = [(22, 22, 24), (225, 225, 220), (70, 45, 30), (110, 110, 112), (30, 36, 70)]
_SHOE_WEIGHTS = [0.45, 0.2, 0.15, 0.12, 0.08]
_BAG_RGB = [(25, 25, 28), (90, 58, 34), (150, 110, 70), (130, 30, 40), (35, 45, 90), (100, 100, 100), (220, 210, 190)]
_BAG_WEIGHTS = [0.3, 0.17, 0.13, 0.1, 0.12, 0.1, 0.08]
_HAT_RGB = [(210, 40, 40), (40, 80, 190), (235, 235, 230), (240, 200, 40), (30, 30, 34), (40, 140, 70), (200, 180, 140)]
_HAT_WEIGHTS = [0.2, 0.2, 0.17, 0.12, 0.1, 0.11, 0.1]
_PATTERN_RGB = [(245, 245, 240), (25, 25, 28), (220, 50, 50), (40, 80, 200), (240, 210, 60)]

_MALL_WALLS = [(206, 204, 199), (218, 208, 188), (228, 225, 218), (192, 193, 196), (212, 202, 182)]
_MALL_FLOORS = [(176, 172, 166), (196, 186, 168), (150, 146, 142), (210, 206, 200)]
_STREET_BUILDINGS = [(150, 82, 62), (150, 146, 136), (72, 72, 78), (180, 160, 120), (100, 120, 140), (196, 196, 190)]
_STREET_BLOCKS = [
    (150, 82, 62),
    (150, 146, 136),
    (60, 62, 70),
    (180, 160, 120),
    (96, 118, 142),
    (200, 200, 195),
    (170, 40, 40),
    (40, 70, 150),
    (210, 190, 60),
    (60, 110, 60),
    (120, 100, 80),
]
_STREET_GROUNDS = [(88, 88, 92), (110, 108, 106), (146, 136, 124), (124, 118, 104)]
# Campus: building walls (concrete, brick, sandstone, grey stone), lawns and paved paths.
_CAMPUS_WALLS = [(184, 178, 170), (164, 116, 96), (204, 194, 170), (150, 152, 150), (192, 190, 184), (176, 150, 122)]
_CAMPUS_GLASS = [(92, 106, 122), (120, 132, 140), (70, 78, 90)]
_CAMPUS_LAWNS = [(96, 132, 66), (112, 144, 74), (84, 118, 60), (124, 140, 84)]
_CAMPUS_PATHS = [(156, 152, 146), (174, 164, 146), (134, 132, 130), (186, 180, 170), (150, 120, 104)]
_CAMPUS_TREES = [(58, 96, 46), (74, 112, 54), (50, 82, 44)]

# Attribute priors: P(label 1) = base + female * slope, and the colour class weights. The street
# shares the mall's; the campus population differs a little (as two datasets' annotations do).
_PRIORS: Dict[str, Dict[str, Tuple[float, ...]]] = {
    "mall": {
        "gender": (0.45,),
        "hair": (0.06, 0.66),
        "sleeve": (0.62, 0.08),
        "lower_type": (0.01, 0.34),
        "lower_length": (0.25, 0.30),  # slope over dress instead of female
        "hat": (0.12,),
        "backpack": (0.25,),
        "bag": (0.15, 0.15),
        "handbag": (0.07, 0.11),
        "upper_colour": tuple(_UPPER_WEIGHTS),
        "lower_colour_pants": tuple(_LOWER_WEIGHTS_PANTS),
        "lower_colour_dress": tuple(_LOWER_WEIGHTS_DRESS),
    },
    "campus": {
        "gender": (0.40,),
        "hair": (0.07, 0.62),
        "sleeve": (0.52, 0.08),
        "lower_type": (0.01, 0.28),
        "lower_length": (0.22, 0.30),
        "hat": (0.09,),
        "backpack": (0.34,),
        "bag": (0.12, 0.14),
        "handbag": (0.05, 0.10),
        "upper_colour": (0.24, 0.18, 0.09, 0.05, 0.05, 0.15, 0.16, 0.08),
        "lower_colour_pants": (0.36, 0.05, 0.02, 0.02, 0.02, 0.14, 0.30, 0.03, 0.06),
        "lower_colour_dress": (0.26, 0.14, 0.16, 0.12, 0.06, 0.07, 0.11, 0.03, 0.05),
    },
}
_PRIORS["street"] = _PRIORS["mall"]


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{_WHERE}: {name} must be an integer >= {minimum}, got bool {value!r}")
    try:
        result = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{_WHERE}: {name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}"
        ) from None
    if result < minimum:
        raise ValueError(f"{_WHERE}: {name} must be an integer >= {minimum}, got {result}")
    return int(result)


def _check_domain(domain: object) -> int:
    expected = " or ".join(f"{name!r} ({number})" for name, number in DOMAINS.items())
    if isinstance(domain, str):
        if domain not in DOMAINS:
            raise ValueError(f"{_WHERE}: domain must be one of {expected}, got {domain!r}")
        return DOMAINS[domain]
    if isinstance(domain, bool):
        raise TypeError(f"{_WHERE}: domain must be a name or number, one of {expected}, got bool {domain!r}")
    try:
        number = operator.index(domain)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{_WHERE}: domain must be a name or number, one of {expected}, got {type(domain).__name__} {domain!r}"
        ) from None
    if number not in DOMAINS.values():
        raise ValueError(f"{_WHERE}: domain must be one of {expected}, got {number}")
    return int(number)


def _generator(seed: int, domain: int, stream: str) -> torch.Generator:
    digest = hashlib.sha256(f"featperm.pedestrians:{seed}:{domain}:{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class _Draw:
    """Random numbers of one stream, as float32 tensors."""

    def __init__(self, generator: torch.Generator) -> None:
        self.g = generator

    def uniform(self, n: int, low: float, high: float, *extra: int) -> torch.Tensor:
        return torch.rand((n, *extra), generator=self.g) * (high - low) + low

    def bernoulli(self, n: int, p: Union[float, torch.Tensor]) -> torch.Tensor:
        return (torch.rand(n, generator=self.g) < p).long()

    def choice(self, n: int, weights: Union[List[float], torch.Tensor]) -> torch.Tensor:
        w = torch.as_tensor(weights, dtype=torch.float32)
        if w.dim() == 1:
            w = w.expand(n, -1)
        cdf = (w / w.sum(1, keepdim=True)).cumsum(1)
        u = torch.rand(n, 1, generator=self.g)
        return (u > cdf[:, :-1]).sum(1)

    def shade(self, n: int, palette: List[Tuple[int, int, int]], index: torch.Tensor, spread: float) -> torch.Tensor:
        """(n, 3) colours: palette[index] with a random gain and a random per-channel offset."""
        base = torch.tensor(palette, dtype=torch.float32)[index]
        gain = self.uniform(n, 1 - spread, 1 + spread, 1)
        offset = self.uniform(n, -spread * 100, spread * 100, 3)
        return (base * gain + offset).clamp(0, 255)


def _force_every_class(labels: torch.Tensor, num_classes: int, g: torch.Generator) -> None:
    """Relabels a few identities (in place) so that every class occurs, where there are at least
    10 identities per class (fewer keep the drawn frequencies)."""
    if labels.numel() < 10 * num_classes:
        return
    order = torch.randperm(labels.numel(), generator=g)
    for c in range(num_classes):
        counts = torch.bincount(labels, minlength=num_classes)
        if counts[c] > 0:
            continue
        commonest = int(counts.argmax())
        candidates = order[labels[order] == commonest]
        labels[candidates[0]] = c


def _identities(
    num: int, priors: Dict[str, Tuple[float, ...]], g: torch.Generator
) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Attributes (each (num,) int64) and appearance details (float tensors, first dim num)."""
    d = _Draw(g)

    def bernoulli(name: str, given: torch.Tensor) -> torch.Tensor:
        base, slope = priors[name]
        return d.bernoulli(num, base + slope * given)

    female = d.bernoulli(num, priors["gender"][0])
    _force_every_class(female, 2, g)
    f = female.float()
    attrs: Dict[str, torch.Tensor] = {"gender": female}
    attrs["hair"] = bernoulli("hair", f)
    attrs["sleeve"] = bernoulli("sleeve", f)
    attrs["lower_type"] = bernoulli("lower_type", f)
    for name in ("hair", "sleeve", "lower_type"):
        _force_every_class(attrs[name], 2, g)
    dress = attrs["lower_type"].float()
    attrs["lower_length"] = bernoulli("lower_length", dress)
    attrs["hat"] = d.bernoulli(num, priors["hat"][0])
    attrs["backpack"] = d.bernoulli(num, priors["backpack"][0])
    attrs["bag"] = bernoulli("bag", f)
    attrs["handbag"] = bernoulli("handbag", f)
    attrs["upper_colour"] = d.choice(num, list(priors["upper_colour"]))
    lower_w = torch.where(
        dress[:, None] > 0, torch.tensor(priors["lower_colour_dress"]), torch.tensor(priors["lower_colour_pants"])
    )
    attrs["lower_colour"] = d.choice(num, lower_w)
    for name in ("lower_length", "hat", "backpack", "bag", "handbag", "upper_colour", "lower_colour"):
        _force_every_class(attrs[name], len(ATTRIBUTE_CLASSES[name]), g)
    f = attrs["gender"].float()

    look: Dict[str, torch.Tensor] = {}
    look["upper"] = d.shade(num, _UPPER_RGB, attrs["upper_colour"], 0.1)
    look["lower"] = d.shade(num, _LOWER_RGB, attrs["lower_colour"], 0.1)
    t = d.uniform(num, 0, 1, 1) ** 1.5
    look["skin"] = torch.tensor(_SKIN_LIGHT) * (1 - t) + torch.tensor(_SKIN_DARK) * t + d.uniform(num, -8, 8, 3)
    look["hair"] = d.shade(num, _HAIR_RGB, d.choice(num, _HAIR_WEIGHTS), 0.1)
    look["shoe"] = d.shade(num, _SHOE_RGB, d.choice(num, _SHOE_WEIGHTS), 0.08)
    look["backpack"] = d.shade(num, _BAG_RGB, d.choice(num, _BAG_WEIGHTS), 0.1)
    look["bag"] = d.shade(num, _BAG_RGB, d.choice(num, _BAG_WEIGHTS), 0.1)
    look["handbag"] = d.shade(num, _BAG_RGB, d.choice(num, _BAG_WEIGHTS), 0.1)
    look["hat"] = d.shade(num, _HAT_RGB, d.choice(num, _HAT_WEIGHTS), 0.08)
    look["pattern"] = d.shade(num, _PATTERN_RGB, d.choice(num, [1.0] * len(_PATTERN_RGB)), 0.08)
    pattern = d.choice(num, [0.65, 0.15, 0.2])  # plain, stripes, chest logo
    look["stripes"] = (pattern == 1).float()
    look["logo"] = (pattern == 2).float()
    look["stripe_period"] = d.uniform(num, 0.035, 0.06)
    # Body: female = narrower shoulders, wider hips, a little shorter.
    width = d.uniform(num, 0.9, 1.12)
    look["shoulder"] = (0.128 - 0.024 * f) * width
    look["hip"] = (0.094 + 0.02 * f) * width
    look["height"] = d.uniform(num, 0.93, 1.03) - 0.03 * f
    look["head"] = d.uniform(num, 0.92, 1.08)
    look["bag_side"] = d.bernoulli(num, 0.5).float() * 2 - 1
    look["handbag_side"] = d.bernoulli(num, 0.5).float() * 2 - 1
    look["leg_width"] = d.uniform(num, 0.9, 1.1)
    return attrs, look


def _box(ax: torch.Tensor, fy: torch.Tensor, x1, y0, y1, s: torch.Tensor, x0=None) -> torch.Tensor:
    """Soft mask of (x0 <=) ax <= x1 and y0 <= fy <= y1 (figure units; s = pixels per unit).

    ax is (n, H, W), fy (n, H, 1) (rows only, cheap), bounds numbers or broadcastable tensors.
    """
    dx = x1 - ax if x0 is None else torch.minimum(ax - x0, x1 - ax)
    return torch.minimum(dx, torch.minimum(fy - y0, y1 - fy)).mul_(s).add_(0.5).clamp_(0, 1)


def _ellipse(ax: torch.Tensor, fy: torch.Tensor, cx, cy, rx, ry, s: torch.Tensor) -> torch.Tensor:
    """Soft mask of the ellipse with centre (cx, cy) and radii (rx, ry) (approximate distance)."""
    r = (((ax - cx) / rx) ** 2 + ((fy - cy) / ry) ** 2).sqrt_()
    return (1 - r).mul_(torch.minimum(torch.as_tensor(rx), torch.as_tensor(ry)) * s).add_(0.5).clamp_(0, 1)


def _paint(img: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> None:
    """img (n,3,H,W) <- colour (n,3) over img where mask (n,H,W) (in place)."""
    img.lerp_(colour[:, :, None, None].expand_as(img), mask[:, None])


def _smooth_noise(n: int, h: int, w: int, cells: Tuple[int, int], g: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(n, 1, *cells, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[:, 0]


def _mall_background(n: int, h: int, w: int, d: _Draw, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    wall = d.shade(n, _MALL_WALLS, d.choice(n, [1.0] * len(_MALL_WALLS)), 0.04)
    img = wall[:, :, None, None] * (1.06 - 0.1 * ys / h).expand(n, 1, h, w)
    img = img.contiguous()
    # A panel (a shop front, a pillar or a door) and sometimes a band (a sign or a rail).
    x0 = d.uniform(n, -0.3, 0.9, 1, 1) * w
    pw = d.uniform(n, 0.15, 0.6, 1, 1) * w
    panel = ((xs - x0).clamp(0, 1) * (x0 + pw - xs).clamp(0, 1)) * d.bernoulli(n, 0.75).float()[:, None, None]
    _paint(img, panel.expand(n, h, w), (wall * d.uniform(n, 0.8, 1.12, 1)).clamp(0, 255))
    y0 = d.uniform(n, 0.02, 0.3, 1, 1) * h
    bh = d.uniform(n, 0.03, 0.08, 1, 1) * h
    band = ((ys - y0).clamp(0, 1) * (y0 + bh - ys).clamp(0, 1)) * d.bernoulli(n, 0.4).float()[:, None, None]
    _paint(img, band.expand(n, h, w), (wall * d.uniform(n, 0.7, 0.95, 1)).clamp(0, 255))
    # The floor with tile joints.
    floor_y = d.uniform(n, 0.66, 0.84, 1, 1) * h
    floor_c = d.shade(n, _MALL_FLOORS, d.choice(n, [1.0] * len(_MALL_FLOORS)), 0.04)
    tile = d.uniform(n, 0.2, 0.4, 1, 1) * w
    tx = torch.remainder(xs + (ys - floor_y) * d.uniform(n, -0.6, 0.6, 1, 1), tile)
    ty = torch.remainder(ys - floor_y, tile * 0.5)
    joints = 1 - 0.08 * ((tx < 1) | (ty < 1)).float()
    floor = (ys - floor_y + 0.5).clamp(0, 1)
    _paint(img, floor, floor_c)
    img.mul_(torch.where(floor > 0, joints, torch.ones(())).unsqueeze(1))
    return img


def _street_background(
    n: int, h: int, w: int, d: _Draw, ys: torch.Tensor, xs: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    base = d.shade(n, _STREET_BUILDINGS, d.choice(n, [1.0] * len(_STREET_BUILDINGS)), 0.1)
    img = base[:, :, None, None].expand(n, 3, h, w).contiguous()
    # Blocks: buildings, windows, cars, shop signs, some with stripes (blinds, fences, windows).
    for _ in range(5):
        x0 = d.uniform(n, -0.4, 0.95, 1, 1) * w
        bw = d.uniform(n, 0.15, 0.7, 1, 1) * w
        y0 = d.uniform(n, -0.3, 0.7, 1, 1) * h
        bh = d.uniform(n, 0.08, 0.5, 1, 1) * h
        mask = (xs - x0).clamp(0, 1) * (x0 + bw - xs).clamp(0, 1) * (ys - y0).clamp(0, 1) * (y0 + bh - ys).clamp(0, 1)
        colour = d.shade(n, _STREET_BLOCKS, d.choice(n, [1.0] * len(_STREET_BLOCKS)), 0.12)
        _paint(img, mask, colour)
        period = d.uniform(n, 2.5, 7.0, 1, 1) * (h / 64)
        amp = d.uniform(n, -0.1, 0.4, 1, 1).clamp(min=0)
        horizontal = d.bernoulli(n, 0.6).float()[:, None, None]
        coord = ys * horizontal + xs * (1 - horizontal)
        stripe = (torch.remainder(coord - y0, period) < period * 0.45).float()
        img.mul_((1 - amp * mask * stripe).unsqueeze(1))
    # Ground: asphalt or pavement below a horizon, sometimes with a crossing.
    ground_y = d.uniform(n, 0.55, 0.8, 1, 1) * h
    ground = (ys - ground_y + 0.5).clamp(0, 1).expand(n, h, w)
    _paint(img, ground, d.shade(n, _STREET_GROUNDS, d.choice(n, [1.0] * len(_STREET_GROUNDS)), 0.08))
    phase = d.uniform(n, 0, 2 * math.pi, 1, 1)
    freq = d.uniform(n, 0.5, 1.0, 1, 1) * (64 / h)
    crossing = (torch.sin(xs * freq + phase + ys * 0.2) > 0.3).float() * d.bernoulli(n, 0.3).float()[:, None, None]
    _paint(img, ground * crossing * 0.8, torch.full((n, 3), 215.0))
    # Greenery: trees and hedges from smooth noise, with leaf texture.
    green = _smooth_noise(n, h, w, (4, 3), g)
    thr = d.uniform(n, 0.45, 1.05, 1, 1)
    leaf = torch.rand(n, h, w, generator=g)
    gmask = ((green - thr) * 12).sigmoid_()
    gmask = gmask * (ys < ground_y + 0.1 * h).float()
    leaf_colour = d.shade(n, [(52, 96, 40), (70, 120, 50), (40, 76, 36)], d.choice(n, [1.0, 1.0, 1.0]), 0.1)
    _paint(img, gmask, leaf_colour)
    img.mul_((1 - 0.35 * gmask * leaf).unsqueeze(1))
    # Fine texture everywhere (stone, leaves, dirt).
    img.mul_((1 + 0.12 * (_smooth_noise(n, h, w, (max(2, h // 4), max(2, w // 4)), g) - 0.5)).unsqueeze(1))
    return img


def _campus_background(
    n: int, h: int, w: int, d: _Draw, ys: torch.Tensor, xs: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    # A building wall, lit a little more towards the ground, sometimes with a grid of windows.
    wall = d.shade(n, _CAMPUS_WALLS, d.choice(n, [1.0] * len(_CAMPUS_WALLS)), 0.06)
    img = wall[:, :, None, None] * (0.96 + 0.08 * ys / h).expand(n, 1, h, w)
    img = img.contiguous()
    px = d.uniform(n, 0.3, 0.55, 1, 1) * w
    py = d.uniform(n, 0.16, 0.28, 1, 1) * h
    ox = d.uniform(n, 0, 1, 1, 1) * px
    oy = d.uniform(n, 0, 1, 1, 1) * py
    windows = (torch.remainder(xs - ox, px) < 0.55 * px) & (torch.remainder(ys - oy, py) < 0.5 * py)
    windows_on = d.bernoulli(n, 0.55).float()[:, None, None] * d.uniform(n, 0.35, 0.7, 1, 1)
    glass = d.shade(n, _CAMPUS_GLASS, d.choice(n, [1.0] * len(_CAMPUS_GLASS)), 0.08)
    _paint(img, windows.float() * windows_on, glass)
    # Below the wall a lawn (or a hedge-less forecourt), then the paved path the people walk on.
    lawn_y = d.uniform(n, 0.4, 0.62, 1, 1) * h
    lawn = (ys - lawn_y + 0.5).clamp(0, 1).expand(n, h, w) * d.bernoulli(n, 0.6).float()[:, None, None]
    _paint(img, lawn, d.shade(n, _CAMPUS_LAWNS, d.choice(n, [1.0] * len(_CAMPUS_LAWNS)), 0.08))
    img.mul_((1 - 0.14 * lawn * torch.rand(n, h, w, generator=g)).unsqueeze(1))
    path_y = d.uniform(n, 0.64, 0.82, 1, 1) * h
    path = (ys - path_y + 0.5).clamp(0, 1).expand(n, h, w)
    _paint(img, path, d.shade(n, _CAMPUS_PATHS, d.choice(n, [1.0] * len(_CAMPUS_PATHS)), 0.06))
    slab = d.uniform(n, 0.3, 0.55, 1, 1) * w
    sx = torch.remainder(xs + (ys - path_y) * d.uniform(n, -0.5, 0.5, 1, 1), slab)
    sy = torch.remainder(ys - path_y, slab * 0.4)
    joints = 1 - 0.06 * ((sx < 1) | (sy < 1)).float() * d.bernoulli(n, 0.6).float()[:, None, None]
    img.mul_(torch.where(path > 0, joints, torch.ones(())).unsqueeze(1))
    # Now and then a tree: a crown of leaves above the path (fewer and calmer than the street's).
    crown = _smooth_noise(n, h, w, (3, 2), g)
    thr = d.uniform(n, 0.7, 1.3, 1, 1)
    tmask = ((crown - thr) * 10).sigmoid_() * (ys < path_y).float()
    _paint(img, tmask, d.shade(n, _CAMPUS_TREES, d.choice(n, [1.0] * len(_CAMPUS_TREES)), 0.1))
    img.mul_((1 - 0.25 * tmask * torch.rand(n, h, w, generator=g)).unsqueeze(1))
    # A cast shadow (of a building or a tree) over part of the scene on sunny cameras.
    angle = d.uniform(n, -1.2, 1.2, 1, 1)
    edge = d.uniform(n, -0.2, 1.2, 1, 1) * w
    shade = ((xs - edge + (ys - h / 2) * angle) / (0.06 * w)).clamp(0, 1)
    depth = d.uniform(n, 0.1, 0.35, 1, 1) * d.bernoulli(n, 0.5).float()[:, None, None]
    img.mul_((1 - depth * shade).unsqueeze(1))
    # Fine, moderate texture (concrete, brick, grass).
    img.mul_((1 + 0.09 * (_smooth_noise(n, h, w, (max(2, h // 4), max(2, w // 4)), g) - 0.5)).unsqueeze(1))
    return img


def _camera_light(domain: int, g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per camera: brightness (n_cam, 1) and colour cast (n_cam, 3)."""
    d = _Draw(g)
    if domain == DOMAINS["street"]:
        n_cam = CAMERAS["street"]
        return d.uniform(n_cam, 0.62, 0.95, 1), torch.tensor([1.08, 1.0, 0.84]) * d.uniform(n_cam, 0.92, 1.08, 3)
    if domain == DOMAINS["campus"]:  # cooler daylight, exposure differs from camera to camera
        n_cam = CAMERAS["campus"]
        return d.uniform(n_cam, 0.9, 1.12, 1), torch.tensor([0.92, 1.0, 1.1]) * d.uniform(n_cam, 0.96, 1.04, 3)
    n_cam = CAMERAS["mall"]
    return d.uniform(n_cam, 0.95, 1.1, 1), d.uniform(n_cam, 0.96, 1.04, 3)


def _draw(
    attrs: Dict[str, torch.Tensor],
    look: Dict[str, torch.Tensor],
    rows: torch.Tensor,
    cameras: torch.Tensor,
    light: Tuple[torch.Tensor, torch.Tensor],
    domain: int,
    h: int,
    w: int,
    g: torch.Generator,
) -> torch.Tensor:
    """Images (n, 3, h, w) uint8 of the identities ``rows`` (n,) seen by ``cameras`` (n,)."""
    d = _Draw(g)
    street = domain == DOMAINS["street"]
    campus = domain == DOMAINS["campus"]
    a = {k: v[rows].float()[:, None, None] for k, v in attrs.items()}
    lk = {k: v[rows] for k, v in look.items()}
    col = {k: v for k, v in lk.items() if v.dim() == 2}
    p = {k: v[:, None, None] for k, v in lk.items() if v.dim() == 1}
    n = int(rows.numel())
    ys = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5

    if street:
        img = _street_background(n, h, w, d, ys, xs, g)
    elif campus:
        img = _campus_background(n, h, w, d, ys, xs, g)
    else:
        img = _mall_background(n, h, w, d, ys, xs)

    # Pose: figure height in pixels, feet position, centre, lean, stride, arms.
    if street:
        fh = d.uniform(n, 0.68, 0.86, 1, 1) * h
        foot = d.uniform(n, 0.88, 0.99, 1, 1) * h
        cx = (0.5 + d.uniform(n, -0.16, 0.16, 1, 1)) * w
    elif campus:
        fh = d.uniform(n, 0.78, 0.9, 1, 1) * h
        foot = d.uniform(n, 0.91, 0.99, 1, 1) * h
        cx = (0.5 + d.uniform(n, -0.1, 0.1, 1, 1)) * w
    else:
        fh = d.uniform(n, 0.82, 0.92, 1, 1) * h
        foot = d.uniform(n, 0.93, 0.995, 1, 1) * h
        cx = (0.5 + d.uniform(n, -0.06, 0.06, 1, 1)) * w
    fh = fh * p["height"]
    lean = d.uniform(n, -0.05, 0.05, 1, 1)
    stride = d.uniform(n, 0.0, 0.06, 1, 1)
    swing = d.uniform(n, -0.01, 0.025, 1, 1)
    back = d.bernoulli(n, 0.4).float()[:, None, None]
    front = 1 - back
    s = fh  # pixels per figure unit
    fy = (ys - (foot - fh)) / fh
    fx = (xs - cx) / fh - lean * (1 - fy)
    ax = fx.abs()

    # Shadow under the feet.
    shadow = _ellipse(fx, fy, 0.0, 1.0, 0.17, 0.03, s)
    img.mul_((1 - 0.3 * shadow).unsqueeze(1))

    sw, hw = p["shoulder"], p["hip"]
    skin, upper, lower = col["skin"], col["upper"], col["lower"]
    dress, short_lower = a["lower_type"], a["lower_length"]
    figure = torch.zeros(n, h, w)

    def paint(mask: torch.Tensor, colour: torch.Tensor) -> None:
        _paint(img, mask, colour)
        torch.maximum(figure, mask, out=figure)

    # Backpack seen from the front: sticks out above the shoulders and beside the arms.
    pack_front = _box(ax, fy, sw + 0.05, 0.125, 0.42, s) * (a["backpack"] * front)
    paint(pack_front, col["backpack"])

    # Legs: skin first, then the lower garment over them.
    leg_x = hw * 0.48 + stride * (fy - 0.55).clamp(min=0)
    leg_d = (ax - leg_x).abs()
    lw = p["leg_width"]
    skin_leg = _box(leg_d, fy, 0.028 * lw, 0.55, 0.955, s)
    paint(skin_leg, skin)
    pants_end = 0.955 - (0.955 - 0.72) * short_lower
    pants_half = hw * 0.52 - (hw * 0.52 - 0.04 * lw) * ((fy - 0.55) / 0.4).clamp(0, 1)
    pants = torch.maximum(_box(leg_d, fy, pants_half, 0.5, pants_end, s), _box(ax, fy, hw, 0.5, 0.6, s))
    hem = 0.9 - (0.9 - 0.72) * short_lower
    skirt_half = hw + 0.16 * (fy - 0.5).clamp(min=0)
    skirt = _box(ax, fy, skirt_half, 0.5, hem, s)
    paint(torch.lerp(pants, skirt, dress.expand_as(pants)), lower)
    # Shoes.
    shoe_x = hw * 0.48 + stride * 0.42
    shoe = _box((ax - shoe_x).abs(), fy, 0.042, 0.935, 1.0, s)
    paint(shoe, col["shoe"])

    # Torso (rounded shoulders, narrowing to the hips) in the upper colour.
    t = ((fy - 0.17) / 0.36).clamp(0, 1)
    torso_half = sw + (hw * 1.02 - sw) * t
    torso_half = torch.minimum(torso_half, sw * (0.55 + 0.45 * ((fy - 0.145) / 0.05).clamp(0, 1).sqrt()))
    torso = _box(ax, fy, torso_half, 0.145, 0.545, s)
    neck = _box(ax, fy, 0.026, 0.11, 0.17, s)
    paint(neck, skin)
    paint(torso, upper)
    stripes = (torch.remainder(fy, p["stripe_period"]) < p["stripe_period"] * 0.5).float()
    paint(torso * stripes * p["stripes"] * 0.6, col["pattern"])
    logo = _box(ax, fy, 0.055, 0.24, 0.31, s) * (p["logo"] * front)
    paint(logo, col["pattern"])

    # Long hair over the shoulders (from the front beside the face, from behind over the back).
    long_hair = _box(ax, fy, 0.074, 0.02, 0.27, s) * a["hair"]
    long_hair = long_hair * (1 - front * _box(ax, fy, 0.03, 0.115, 1.0, s))
    paint(long_hair, col["hair"])

    # Backpack seen from behind: a box on the back; from the front: two straps.
    pack_back = _box(ax, fy, 0.085, 0.17, 0.47, s) * (a["backpack"] * back)
    paint(pack_back, col["backpack"])
    straps = _box((ax - sw * 0.58).abs(), fy, 0.017, 0.15, 0.4, s) * (a["backpack"] * front)
    paint(straps, col["backpack"] * 0.8)

    # Arms: sleeves in (a slightly darker) upper colour, skin below short sleeves, hands.
    arm_x = sw - 0.01 + (fy - 0.17) / 0.32 * (0.035 + swing)
    arm_d = (ax - arm_x).abs()
    arm = _box(arm_d, fy, 0.029 - 0.009 * ((fy - 0.17) / 0.3).clamp(0, 1), 0.16, 0.49, s)
    sleeve_end = 0.475 - (0.475 - 0.285) * a["sleeve"]
    sleeve = arm * (sleeve_end - fy).mul(s).add(0.5).clamp(0, 1)
    paint(arm, skin)
    paint(sleeve, upper * 0.85)
    hand_x = sw - 0.01 + 0.33 / 0.32 * (0.035 + swing)
    hand = _ellipse(ax, fy, hand_x, 0.505, 0.024, 0.03, s)
    paint(hand, skin)

    # Shoulder bag: a box at the hip on one side and a strap across the torso.
    side = p["bag_side"] * (front - back)
    sx = fx * side
    bag = _box(sx, fy, hw + 0.075, 0.41, 0.56, s, x0=hw - 0.015) * a["bag"]
    # Strap from the opposite shoulder (-0.6 sw, 0.17) to the bag (hw + 0.02, 0.41).
    x1, y1 = -0.6 * sw, 0.17
    x2, y2 = hw + 0.02, 0.41
    dx, dy = x2 - x1, y2 - y1
    length = (dx * dx + dy * dy).sqrt()
    dist = ((sx - x1) * dy - (fy - y1) * dx).abs() / length
    strap = _box(dist, fy, 0.01, 0.16, 0.42, s) * a["bag"]
    paint(strap, col["bag"] * 0.8)
    paint(bag, col["bag"])

    # Handbag hanging from one hand.
    hside = p["handbag_side"] * (front - back)
    hx = fx * hside
    handle = _box((hx - hand_x).abs(), fy, 0.008, 0.5, 0.55, s) * a["handbag"]
    handbag = _box(hx, fy, hand_x + 0.05, 0.54, 0.65, s, x0=hand_x - 0.045) * a["handbag"]
    paint(handle, col["handbag"] * 0.7)
    paint(handbag, col["handbag"])

    # Head: a face from the front, hair from behind; hair on top; hat.
    hr = p["head"]
    head = _ellipse(ax, fy, 0.0, 0.075, 0.05 * hr, 0.066 * hr, s)
    paint(head, torch.lerp(skin, col["hair"], back[:, :, 0]))
    cap = _ellipse(ax, fy, 0.0, 0.072, 0.056 * hr, 0.072 * hr, s)
    cap = cap * torch.maximum(((0.05 + 0.05 * a["hair"]) - fy).mul(s).add(0.5).clamp(0, 1), back)
    paint(cap, col["hair"])
    crown = _ellipse(ax, fy, 0.0, 0.045, 0.062 * hr, 0.085, s) * (0.045 - fy).mul(s).add(0.5).clamp(0, 1)
    brim = _box(ax, fy, 0.08 * hr, 0.028, 0.055, s)
    paint(torch.maximum(crown, brim) * a["hat"], col["hat"])

    # Shading: the figure darkens towards its edges.
    img.mul_((1 - 0.22 * figure * (ax / 0.16).clamp(0, 1).square()).unsqueeze(1))

    # Lighting: camera-dependent brightness and colour cast, per-image changes, contrast.
    cam_gain, cam_cast = light
    if street:
        img_gain = d.uniform(n, 0.8, 1.2, 1)
        contrast = d.uniform(n, 0.8, 1.2, 1, 1, 1)
        gradient = d.uniform(n, -0.35, 0.35, 1, 1)
        img.mul_((1 + gradient * (xs / w - 0.5)).unsqueeze(1))
        noise_sigma, blur = 4.0, d.uniform(n, 0.1, 0.6, 1, 1, 1)
    elif campus:
        img_gain = d.uniform(n, 0.9, 1.1, 1)
        contrast = d.uniform(n, 0.85, 1.1, 1, 1, 1)
        gradient = d.uniform(n, -0.2, 0.2, 1, 1)
        img.mul_((1 + gradient * (xs / w - 0.5)).unsqueeze(1))
        noise_sigma, blur = 3.2, d.uniform(n, 0.1, 0.7, 1, 1, 1)
    else:
        img_gain = d.uniform(n, 0.92, 1.08, 1)
        contrast = d.uniform(n, 0.9, 1.05, 1, 1, 1)
        noise_sigma, blur = 2.5, d.uniform(n, 0.0, 0.5, 1, 1, 1)
    gain = cam_gain[cameras] * cam_cast[cameras] * img_gain * d.uniform(n, 0.97, 1.03, 3)
    img.mul_(gain[:, :, None, None])
    img.sub_(128).mul_(contrast).add_(128)
    blurred = F.pad(img, (1, 1, 1, 1), mode="replicate")
    blurred = (blurred[:, :, :-2] + 2 * blurred[:, :, 1:-1] + blurred[:, :, 2:]) * 0.25
    blurred = (blurred[:, :, :, :-2] + 2 * blurred[:, :, :, 1:-1] + blurred[:, :, :, 2:]) * 0.25
    img.lerp_(blurred, blur.expand(n, 1, 1, 1))
    img.add_(torch.randn(img.shape, generator=g).mul_(noise_sigma))
    return img.clamp_(0, 255).round_().to(torch.uint8)


def synthetic_pedestrians(
    num_identities: int,
    images_per_identity: int,
    *,
    domain: Union[int, str] = 0,
    seed: int = 0,
    height: int = 64,
    width: int = 32,
) -> AttributeImages:
    """Draws ``num_identities`` pedestrians, ``images_per_identity`` images each.

    Args:
        num_identities: identities (>= 1); with 100 or more every class of every attribute
            occurs (a few identities are relabelled where needed).
        images_per_identity: images of each identity (>= 1), shot by 2 to 4 neighbouring cameras
            (its first two images by two different ones).
        domain: ``"mall"`` / 0, ``"street"`` / 1 or ``"campus"`` / 2 (see the module docstring).
        seed: any integer >= 0; with the domain it fixes the identities and the images.
        height, width: image size (>= 32 and >= 16); the drawing scales with it.

    Returns:
        :class:`AttributeImages` with ``images`` (N, 3, height, width) uint8,
        ``identities`` / ``cameras`` (N,) int64 and ``attributes[name]`` (N,) int64 for every
        name of :data:`ATTRIBUTE_CLASSES`, where N = num_identities * images_per_identity and the
        images of identity i are the contiguous rows i*images_per_identity ... ;
        ``name`` is ``"synthetic-mall"``, ``"synthetic-street"`` or ``"synthetic-campus"``.

    Raises:
        TypeError: a count, size or the seed is not an integer (bool and float included), or
            the domain is neither a name nor an integer.
        ValueError: a count is < 1, height < 32, width < 16, seed < 0 or the domain is unknown.
    """
    num_identities = _check_count("num_identities", num_identities, 1)
    images_per_identity = _check_count("images_per_identity", images_per_identity, 1)
    number = _check_domain(domain)
    seed = _check_count("seed", seed, 0)
    height = _check_count("height", height, 32)
    width = _check_count("width", width, 16)
    domain_name = next(name for name, value in DOMAINS.items() if value == number)

    attrs, look = _identities(num_identities, _PRIORS[domain_name], _generator(seed, number, "identities"))
    g = _generator(seed, number, "images")
    n = num_identities * images_per_identity
    rep = torch.arange(num_identities).repeat_interleave(images_per_identity)

    # Cameras: each identity walks past 2..4 neighbouring cameras; its first two images come
    # from different cameras.
    n_cam = CAMERAS[domain_name]
    first = torch.randint(0, n_cam, (num_identities,), generator=g)
    span = torch.randint(2, 5, (num_identities,), generator=g)
    offset = (torch.rand(n, generator=g) * span[rep]).long()
    j = torch.arange(n) % images_per_identity
    offset = torch.where(j < 2, j, offset)
    cameras = (first[rep] + offset) % n_cam

    # Drawn in chunks of about _CHUNK_PIXELS pixels (fast in the caches); the chunk size
    # depends only on the image size, so the images depend only on the arguments.
    light = _camera_light(number, _generator(seed, number, "cameras"))
    chunk = max(1, _CHUNK_PIXELS // (height * width))
    images = torch.empty(n, 3, height, width, dtype=torch.uint8)
    for start in range(0, n, chunk):
        end = min(n, start + chunk)
        images[start:end] = _draw(attrs, look, rep[start:end], cameras[start:end], light, number, height, width, g)
    return AttributeImages(
        identities=rep,
        cameras=cameras,
        attributes={name: attrs[name][rep] for name in ATTRIBUTE_CLASSES},
        classes=dict(ATTRIBUTE_CLASSES),
        images=images,
        name=f"synthetic-{domain_name}",
    )
