"""Readers for the real datasets a researcher downloaded (never downloaded here).

Each reader is a torch ``Dataset`` of sample dicts (see :mod:`salbook.data`) reading one layout
under ``root``.  The expected layout is in every class docstring; a wrong or missing ``root``
raises :class:`DatasetLayoutError` that prints the layout and the first missing path.

Sizes and the mismatch rule: the image is resized to ``size`` (H, W) and every map, mask and the
fixations to ``target_size`` (h, w) by the rule of :mod:`salbook.data.transforms` (bilinear with
antialiasing for images and maps, nearest for masks, exact ``floor((p + 0.5) * new / old)`` for
fixations).  Each file is resized *from its own size*: fixations from the grid they were recorded
on (SALICON's ``resolution`` field, the size of MIT1003's ``_fixPts`` image, the size of CAT2000's
``FIXATIONLOCS`` matrix), maps from the map's size, masks from the mask's size.  So an image whose
map or fixation grid has a different size than the image itself is handled by the same rule (the
mismatch is assumed to be a pure rescaling of the same view).

An image whose fixation record is empty gives ``fixations`` of shape 0×2 and an all-zero
``fixation_map`` (metrics then return NaN for it).  A split without any fixation data (SALICON
test, CAT2000 testSet) has no ``fixations``/``fixation_map`` fields at all.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..maps import fixation_map_from_points, resize_tensor
from .transforms import finish_sample, normalize_image, rescale_fixations, sample_transforms

__all__ = [
    "DatasetLayoutError",
    "ImageReadError",
    "FolderDataset",
    "SALICON",
    "MIT1003",
    "CAT2000",
    "CAT2000_CATEGORIES",
    "DUTS",
    "ECSSD",
    "MNIST",
    "resolve_root",
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

#: The 20 CAT2000 categories (folder names as distributed, including the spelling "Satelite");
#: ``label`` is the index in this tuple.
CAT2000_CATEGORIES: tuple[str, ...] = (
    "Action", "Affective", "Art", "BlackWhite", "Cartoon", "Fractal", "Indoor", "Inverted",
    "Jumbled", "LineDrawing", "LowResolution", "Noisy", "Object", "OutdoorManMade",
    "OutdoorNatural", "Pattern", "Random", "Satelite", "Sketch", "Social",
)


class DatasetLayoutError(FileNotFoundError):
    """``root`` does not hold the expected layout; the message shows the layout and the first
    missing path."""


class ImageReadError(OSError):
    """An image (or map/mask) file exists but cannot be decoded; the message names the file."""


def _layout(doc: str | None, stop: str) -> str:
    """The literal layout block of a reader's docstring (between ``::`` and ``stop``), indented."""
    block = (doc or "").split("::", 1)[1].split(stop, 1)[0]
    return "\n".join("    " + line.strip() for line in block.strip().splitlines() if line.strip())


def resolve_root(root: str | os.PathLike | None, folder: str, layout: str, dataset: str) -> Path:
    """``root`` as a Path; if None, ``$SALBOOK_DATA/<folder>``; otherwise a clear error."""
    if root is None:
        base = os.environ.get("SALBOOK_DATA")
        if not base:
            raise DatasetLayoutError(
                f"{dataset}: no data root given. Pass root=... (the folder you downloaded) or set "
                f"$SALBOOK_DATA so that $SALBOOK_DATA/{folder} holds:\n{layout}\n"
                "Nothing is downloaded by salbook."
            )
        root = Path(base) / folder
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(
            f"{dataset}: data root {str(root)!r} is not a folder. Expected layout under it:\n{layout}\n"
            f"first missing path: {root}"
        )
    return root


def _require(path: Path, root: Path, layout: str, dataset: str) -> Path:
    if not path.exists():
        raise DatasetLayoutError(
            f"{dataset}: the layout under {str(root)!r} is not the expected one:\n{layout}\n"
            f"first missing path: {path}"
        )
    return path


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _read_pil(path: Path, mode: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert(mode))  # a writable copy
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"cannot read image file {path}: {exc}") from exc


def _image_ok(path: Path) -> bool:
    try:
        _read_pil(path, "RGB")
        return True
    except ImageReadError:
        return False


@dataclasses.dataclass
class Record:
    """One item of a folder dataset: paths of its files and its label (None where absent)."""

    name: str
    image: Path
    fixation_map: Path | None = None
    fixations: Path | None = None
    mask: Path | None = None
    label: int | None = None


class FolderDataset(torch.utils.data.Dataset):
    """Common machinery of the real-dataset readers (subclasses list the records).

    Args:
        root: the dataset folder (see the subclass's layout), or None for ``$SALBOOK_DATA/<name>``.
        split: dataset-specific split name.
        size: image (H, W); default ``DEFAULT_SIZE`` of the class.
        target_size: maps/mask/fixation grid (h, w); default ``size``.
        normalize: ImageNet mean/std on the image.
        flip: True for a seeded random horizontal flip (p 0.5), or a transform object.
        transform: extra callable applied last to each sample dict.
        on_error: ``"raise"`` (default): an unreadable image raises :class:`ImageReadError`
            naming the file when it is read; ``"skip"``: every image is decoded once at
            construction, unreadable ones are dropped with one warning giving their count
            (``self.skipped`` lists them).
        seed: seed of the flip generator.
    """

    NAME = "folder"
    FOLDER = ""
    LAYOUT = ""
    SPLITS: tuple[str, ...] = ()
    DEFAULT_SIZE: tuple[int, int] = (192, 256)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str | None = None,
        size: Sequence[int] | None = None,
        target_size: Sequence[int] | None = None,
        normalize: bool = False,
        flip: bool | Callable | None = None,
        transform: Callable | None = None,
        on_error: str = "raise",
        seed: int = 0,
    ):
        split = self.SPLITS[0] if split is None else split
        if split not in self.SPLITS:
            raise ValueError(f"{self.NAME}: unknown split {split!r}; choose one of {self.SPLITS}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.split = split
        self.size = tuple(int(s) for s in (size or self.DEFAULT_SIZE))
        self.target_size = tuple(int(s) for s in target_size) if target_size is not None else self.size
        self.root = resolve_root(root, self.FOLDER, self.LAYOUT, self.NAME)
        self.normalize = bool(normalize)
        self.transforms = sample_transforms(flip, transform, seed)
        self.records = self._records()
        self.skipped: list[Path] = []
        if on_error == "skip":
            good = [r for r in self.records if _image_ok(r.image)]
            self.skipped = [r.image for r in self.records if r not in good]
            if self.skipped:
                warnings.warn(
                    f"{self.NAME} {split}: skipped {len(self.skipped)} unreadable image(s), "
                    f"first: {self.skipped[0]}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.records = good
        self.has_fixations = any(r.fixations is not None or r.fixation_map is not None for r in self.records)

    # -- to be provided by subclasses
    def _records(self) -> list[Record]:
        raise NotImplementedError

    def _read_fixations(self, rec: Record) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None]:
        """(fixations K×2 (row, col) 0-based, the grid (h, w) they live on, observer ids or None)."""
        raise NotImplementedError

    # -- helpers
    def _images_in(self, folder: Path) -> list[Path]:
        """The image files of ``folder``, sorted; a layout error naming the folder if there are none."""
        images = _list_images(folder)
        if not images:
            raise DatasetLayoutError(f"{self.NAME}: no images in {folder}; expected layout:\n{self.LAYOUT}")
        return images

    def _image_mask_records(self, image_dir: Path, mask_dir: Path) -> list[Record]:
        """Salient-object layouts: every image in ``image_dir`` with ``<mask_dir>/<stem>.png``."""
        images = self._images_in(self._need(image_dir))
        mask_dir = self._need(mask_dir)
        recs = [Record(p.stem, p, mask=mask_dir / f"{p.stem}.png") for p in images]
        self._check_all_exist(recs, ("mask",))
        return recs

    def _need(self, path: Path) -> Path:
        return _require(path, self.root, self.LAYOUT, self.NAME)

    def _check_all_exist(self, records: list[Record], fields: Sequence[str]) -> None:
        """Raise a layout error naming the first missing per-image file (and how many are missing)."""
        missing = [getattr(r, f) for r in records for f in fields if getattr(r, f) is not None and not getattr(r, f).exists()]
        if missing:
            raise DatasetLayoutError(
                f"{self.NAME} {self.split}: {len(missing)} file(s) of the expected layout are missing:\n"
                f"{self.LAYOUT}\nfirst missing path: {missing[0]}"
            )

    def __len__(self) -> int:
        return len(self.records)

    def fixation_record(self, index: int) -> tuple[np.ndarray, tuple[int, int]]:
        """(fixations int64 K×2 on the map grid, map size (h, w)) of sample ``index`` without
        decoding the image: the cheap path of the centre-bias fit and the sAUC shuffle map. With a
        transform that may move fixations (a flip), the full sample is built instead."""
        if not self.has_fixations:
            raise ValueError(f"{self.NAME} {self.split} has no fixations")
        if self.transforms:
            s = self[index]
            return s["fixations"].numpy(), tuple(s["fixation_map"].shape[-2:])
        fix, grid, _ = self._read_fixations(self.records[index])
        fix = rescale_fixations(np.asarray(fix, dtype=np.int64).reshape(-1, 2), grid, self.target_size)
        return fix, self.target_size

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        img = _read_pil(rec.image, "RGB")
        image = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)
        sample: dict[str, Any] = {"image": resize_tensor(image, self.size, "bilinear").clamp_(0.0, 1.0)}
        if self.has_fixations:
            fix, grid, obs = self._read_fixations(rec)
            fix_t = torch.from_numpy(rescale_fixations(np.asarray(fix, dtype=np.int64).reshape(-1, 2), grid, self.target_size))
            sample["fixations"] = fix_t
            if obs is not None:
                sample["observers"] = torch.as_tensor(obs, dtype=torch.long)
            if rec.fixation_map is not None:
                fmap = torch.from_numpy(_read_pil(rec.fixation_map, "L").astype(np.float32) / 255.0)
                fmap = resize_tensor(fmap, self.target_size, "bilinear").clamp_(min=0.0)
                peak = float(fmap.max())
                sample["fixation_map"] = fmap / peak if peak > 0 else fmap
            else:
                sample["fixation_map"] = fixation_map_from_points(fix_t, self.target_size)
        if rec.mask is not None:
            m = torch.from_numpy((_read_pil(rec.mask, "L") > 128).astype(np.float32))
            sample["mask"] = (resize_tensor(m, self.target_size, "nearest") >= 0.5).float()
        if rec.label is not None:
            sample["label"] = int(rec.label)
        sample["name"] = rec.name
        return finish_sample(sample, self.transforms, self.normalize)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, size={self.size})"


# --------------------------------------------------------------------------------------- SALICON


def _read_salicon_mat(path: Path) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """SALICON ``.mat``: ``gaze`` struct array (one per subject) with ``fixations`` (col, row),
    1-based; ``resolution`` = (height, width).  Returns 0-based (row, col), grid, subject ids."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise ImageReadError(f"cannot read fixation file {path}: {exc}") from exc
    if "gaze" not in mat:
        raise DatasetLayoutError(f"SALICON fixation file {path} has no 'gaze' variable (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    res = np.atleast_1d(np.asarray(mat.get("resolution", [480, 640]), dtype=np.int64)).ravel()
    grid = (int(res[0]), int(res[1]))
    gaze = np.atleast_1d(mat["gaze"])
    rows, subj = [], []
    for s, g in enumerate(gaze):
        f = np.asarray(getattr(g, "fixations", np.zeros((0, 2))), dtype=np.float64)
        f = f.reshape(-1, 2) if f.size else np.zeros((0, 2))
        rows.append(f)
        subj.append(np.full(len(f), s, dtype=np.int64))
    fx = np.concatenate(rows) if rows else np.zeros((0, 2))
    obs = np.concatenate(subj) if subj else np.zeros(0, np.int64)
    fix = np.stack([fx[:, 1] - 1, fx[:, 0] - 1], axis=1).round().astype(np.int64) if len(fx) else np.zeros((0, 2), np.int64)
    keep = (fix[:, 0] >= 0) & (fix[:, 0] < grid[0]) & (fix[:, 1] >= 0) & (fix[:, 1] < grid[1])
    return fix[keep], grid, obs[keep]


class SALICON(FolderDataset):
    """SALICON (LSUN 2015/2017 challenge release), read from ``root``.

    Expected layout::

        <root>/images/train/COCO_train2014_000000000009.jpg   (10,000 train, 5,000 val, 5,000 test)
        <root>/images/val/COCO_val2014_*.jpg
        <root>/images/test/COCO_test2014_*.jpg
        <root>/maps/train/<image stem>.png                    (fixation maps, grey, 640x480)
        <root>/maps/val/<image stem>.png
        <root>/fixations/train/<image stem>.mat               (MATLAB: gaze(s).fixations = [col row],
        <root>/fixations/val/<image stem>.mat                  1-based, per subject s; resolution=[480 640])

    Splits ``train``, ``val`` (image, fixations, observers, fixation_map) and ``test`` (images only).
    """

    NAME = "salicon"
    FOLDER = "SALICON"
    SPLITS = ("train", "val", "test")
    LAYOUT = _layout(__doc__, "Splits")

    def _records(self) -> list[Record]:
        img_dir = self._need(self.root / "images" / self.split)
        images = self._images_in(img_dir)
        recs = []
        for p in images:
            if self.split == "test":
                recs.append(Record(p.stem, p))
            else:
                recs.append(Record(
                    p.stem, p,
                    fixation_map=self.root / "maps" / self.split / f"{p.stem}.png",
                    fixations=self.root / "fixations" / self.split / f"{p.stem}.mat",
                ))
        if self.split != "test":
            self._need(self.root / "maps" / self.split)
            self._need(self.root / "fixations" / self.split)
            self._check_all_exist(recs, ("fixation_map", "fixations"))
        return recs

    def _read_fixations(self, rec: Record):
        return _read_salicon_mat(rec.fixations)


# --------------------------------------------------------------------------------------- MIT1003


class MIT1003(FolderDataset):
    """MIT1003 (Judd et al. 2009), read from ``root``.

    Expected layout::

        <root>/ALLSTIMULI/<name>.jpeg                          (1003 images, various sizes)
        <root>/ALLFIXATIONMAPS/<name>_fixMap.jpg               (continuous fixation map)
        <root>/ALLFIXATIONMAPS/<name>_fixPts.jpg               (fixated pixels: white on black)

    Fixations are the pixels of ``_fixPts`` brighter than 127 (the file is a JPEG, so the
    threshold absorbs compression noise); observers are not in these files (no ``observers``).
    Splits: ``all`` (every image), ``train`` / ``val``: a fixed split of the names sorted and
    permuted with seed 0, the first 10 % (at least 1) being ``val`` (903 / 100 on the full set).
    """

    NAME = "mit1003"
    FOLDER = "MIT1003"
    SPLITS = ("all", "train", "val")
    LAYOUT = _layout(__doc__, "Fixations are")

    def _records(self) -> list[Record]:
        stim = self._need(self.root / "ALLSTIMULI")
        maps = self._need(self.root / "ALLFIXATIONMAPS")
        images = self._images_in(stim)
        recs = [Record(p.stem, p, fixation_map=maps / f"{p.stem}_fixMap.jpg", fixations=maps / f"{p.stem}_fixPts.jpg")
                for p in images]
        self._check_all_exist(recs, ("fixation_map", "fixations"))
        if self.split != "all":
            perm = np.random.default_rng(0).permutation(len(recs))
            n_val = max(1, int(round(0.1 * len(recs))))
            val = set(perm[:n_val].tolist())
            recs = [r for i, r in enumerate(recs) if (i in val) == (self.split == "val")]
        return recs

    def _read_fixations(self, rec: Record):
        pts = _read_pil(rec.fixations, "L")
        rr, cc = np.nonzero(pts > 127)
        return np.stack([rr, cc], axis=1).astype(np.int64), pts.shape, None


# --------------------------------------------------------------------------------------- CAT2000


class CAT2000(FolderDataset):
    """CAT2000 (Borji & Itti 2015), read from ``root``.

    Expected layout::

        <root>/trainSet/Stimuli/<Category>/NNN.jpg             (20 categories x 100 images, 1920x1080)
        <root>/trainSet/FIXATIONMAPS/<Category>/NNN.jpg        (continuous fixation map)
        <root>/trainSet/FIXATIONLOCS/<Category>/NNN.mat        (binary matrix, image size, 1 = fixated)
        <root>/testSet/Stimuli/<Category>/NNN.jpg              (test images, no fixations)

    ``label`` is the category's index in ``CAT2000_CATEGORIES``.  Splits ``train`` (trainSet) and
    ``test`` (testSet: image, label, name only).  The ``.mat`` variable is ``fixLocs``; if absent,
    the file's single matrix is used.
    """

    NAME = "cat2000"
    FOLDER = "CAT2000"
    SPLITS = ("train", "test")
    LAYOUT = _layout(__doc__, "``label``")

    def _records(self) -> list[Record]:
        base = self._need(self.root / ("trainSet" if self.split == "train" else "testSet"))
        stim = self._need(base / "Stimuli")
        cats = sorted(p.name for p in stim.iterdir() if p.is_dir() and p.name != "Output")
        if not cats:
            raise DatasetLayoutError(f"cat2000: no category folders in {stim}; expected layout:\n{self.LAYOUT}")
        unknown = [c for c in cats if c not in CAT2000_CATEGORIES]
        if unknown:
            raise DatasetLayoutError(
                f"cat2000: unknown category folder(s) {unknown} in {stim}; expected the 20 CAT2000 "
                f"categories {CAT2000_CATEGORIES}"
            )
        recs = []
        for c in cats:
            for p in _list_images(stim / c):
                rec = Record(f"{c}/{p.stem}", p, label=CAT2000_CATEGORIES.index(c))
                if self.split == "train":
                    rec.fixation_map = base / "FIXATIONMAPS" / c / f"{p.stem}.jpg"
                    rec.fixations = base / "FIXATIONLOCS" / c / f"{p.stem}.mat"
                recs.append(rec)
        if self.split == "train":
            self._need(base / "FIXATIONMAPS")
            self._need(base / "FIXATIONLOCS")
            self._check_all_exist(recs, ("fixation_map", "fixations"))
        return recs

    def _read_fixations(self, rec: Record):
        from scipy.io import loadmat

        try:
            mat = loadmat(str(rec.fixations))
        except Exception as exc:
            raise ImageReadError(f"cannot read fixation file {rec.fixations}: {exc}") from exc
        arrays = {k: v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == 2}
        if "fixLocs" in arrays:
            locs = arrays["fixLocs"]
        elif len(arrays) == 1:
            locs = next(iter(arrays.values()))
        else:
            raise DatasetLayoutError(f"cat2000: {rec.fixations} holds no 'fixLocs' matrix (variables: {sorted(arrays)})")
        rr, cc = np.nonzero(locs)
        return np.stack([rr, cc], axis=1).astype(np.int64), locs.shape, None


# --------------------------------------------------------------------------------------- SOD sets


class DUTS(FolderDataset):
    """DUTS salient-object detection (Wang et al. 2017), read from ``root``.

    Expected layout::

        <root>/DUTS-TR/DUTS-TR-Image/<name>.jpg                (10,553 training images)
        <root>/DUTS-TR/DUTS-TR-Mask/<name>.png                 (binary masks, 0/255)
        <root>/DUTS-TE/DUTS-TE-Image/<name>.jpg                (5,019 test images)
        <root>/DUTS-TE/DUTS-TE-Mask/<name>.png

    Splits ``train`` (DUTS-TR) and ``test`` (DUTS-TE); samples: image, mask (gt > 128), name.
    """

    NAME = "duts"
    FOLDER = "DUTS"
    SPLITS = ("train", "test")
    DEFAULT_SIZE = (224, 224)
    LAYOUT = _layout(__doc__, "Splits")

    def _records(self) -> list[Record]:
        tag = "DUTS-TR" if self.split == "train" else "DUTS-TE"
        return self._image_mask_records(self.root / tag / f"{tag}-Image", self.root / tag / f"{tag}-Mask")


class ECSSD(FolderDataset):
    """ECSSD salient-object detection (Yan et al. 2013), read from ``root``.

    Expected layout::

        <root>/images/<NNNN>.jpg                               (1,000 images)
        <root>/ground_truth_mask/<NNNN>.png                    (binary masks, 0/255)

    One split, ``test`` (alias ``all``); samples: image, mask (gt > 128), name.
    """

    NAME = "ecssd"
    FOLDER = "ECSSD"
    SPLITS = ("test", "all")
    DEFAULT_SIZE = (224, 224)
    LAYOUT = _layout(__doc__, "One split")

    def _records(self) -> list[Record]:
        return self._image_mask_records(self.root / "images", self.root / "ground_truth_mask")


# --------------------------------------------------------------------------------------- MNIST


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a uint8 array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageReadError(f"cannot read IDX file {path}: {exc}") from exc
    if len(data) < 4:
        raise ImageReadError(f"IDX file {path} is truncated ({len(data)} bytes)")
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise ImageReadError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ImageReadError(f"IDX file {path}: header says {dims} = {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


class MNIST(torch.utils.data.Dataset):
    """MNIST digits from the original IDX files, read from ``root``.

    Expected layout (each file optionally gzip-compressed with a ``.gz`` suffix; the files may
    also sit in ``<root>/MNIST/raw/``, torchvision's layout)::

        <root>/train-images-idx3-ubyte                         (60,000 x 28 x 28)
        <root>/train-labels-idx1-ubyte
        <root>/t10k-images-idx3-ubyte                          (10,000 x 28 x 28)
        <root>/t10k-labels-idx1-ubyte

    Splits ``train`` and ``test``.  Samples: ``image`` float32 1×28×28 in [0, 1] (``channels=3``
    repeats it; ``size`` resizes bilinearly), ``label`` int 0-9, ``name``.  ``normalize=True`` uses
    the MNIST mean/std (0.1307, 0.3081).
    """

    NAME = "mnist"
    FOLDER = "MNIST"
    SPLITS = ("train", "test")
    LAYOUT = _layout(__doc__, "Splits")
    MEAN, STD = (0.1307,), (0.3081,)

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str = "train",
        size: Sequence[int] | None = None,
        channels: int = 1,
        normalize: bool = False,
        transform: Callable | None = None,
    ):
        if split not in self.SPLITS:
            raise ValueError(f"mnist: unknown split {split!r}; choose one of {self.SPLITS}")
        if channels not in (1, 3):
            raise ValueError(f"mnist: channels must be 1 or 3, got {channels}")
        self.root = resolve_root(root, self.FOLDER, self.LAYOUT, self.NAME)
        self.split, self.channels, self.normalize, self.transform = split, channels, bool(normalize), transform
        self.size = tuple(int(s) for s in size) if size is not None else (28, 28)
        prefix = "train" if split == "train" else "t10k"
        self.images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"))
        self.labels = read_idx(self._find(f"{prefix}-labels-idx1-ubyte"))
        if self.images.ndim != 3 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise ImageReadError(
                f"mnist {split}: images {self.images.shape} and labels {self.labels.shape} do not match"
            )

    def _find(self, stem: str) -> Path:
        for folder in (self.root, self.root / "MNIST" / "raw", self.root / "raw"):
            for name in (stem, stem + ".gz"):
                if (folder / name).exists():
                    return folder / name
        raise DatasetLayoutError(
            f"mnist: the layout under {str(self.root)!r} is not the expected one:\n{self.LAYOUT}\n"
            f"first missing path: {self.root / stem}"
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        img = torch.from_numpy(self.images[index].astype(np.float32) / 255.0)[None]
        if self.size != tuple(img.shape[-2:]):
            img = resize_tensor(img, self.size, "bilinear").clamp_(0.0, 1.0)
        if self.normalize:
            img = normalize_image(img, self.MEAN, self.STD)
        if self.channels == 3:
            img = img.repeat(3, 1, 1)
        sample = {"image": img, "label": int(self.labels[index]), "name": f"mnist-{self.split}-{index:05d}"}
        if self.transform is not None:
            sample = self.transform(sample)
        return sample
