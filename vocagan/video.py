"""Videos of vertex animations: H.264 mp4 encoding with sound, the ground truth | prediction | error
side-by-side composition, and `vocagan render` on files (vertices .npy + a mesh for the faces).

Frames come from `vocagan.render` (camera, shading, rasterisers). Videos are H.264 (yuv420p,
+faststart) with AAC audio, encoded by the ffmpeg that imageio-ffmpeg ships, written atomically.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.frames import as_vertex_frames
from vocagan.render import check_mesh, frame_camera, render_frames
from vocagan.utils import atomic_path, log, progress


# ----------------------------------------------------------------------------- ffmpeg
def ffmpeg_command(*args: str) -> list[str]:
    """The command line of imageio-ffmpeg's bundled ffmpeg with `args`: overwrite, errors only."""
    import imageio_ffmpeg

    return [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args]


def ffmpeg_error(stderr: bytes, default: str) -> str:
    """ffmpeg's reason for failing: the last line it wrote to stderr, or `default` when it wrote none."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else default


# ----------------------------------------------------------------------------- video
def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: str | Path | tuple[np.ndarray, int] | None = None,
    total: int | None = None,
    crf: int = 18,
) -> Path:
    """Encode (H, W, 3) uint8 frames as H.264 (yuv420p, +faststart) mp4 with optional AAC audio.

    audio: a sound file path (anything ffmpeg reads) or (samples float 1-D, sample_rate).
    Frames are piped raw to imageio-ffmpeg's bundled ffmpeg; the mp4 appears atomically.
    """
    path = Path(path)
    if fps <= 0:
        raise VocaganError(f"fps must be positive, got {fps}", path)
    frames = iter(frames)
    try:
        first = next(frames)
    except StopIteration:
        raise VocaganError("no frames to write", path) from None
    if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
        raise VocaganError(f"frames must be (H, W, 3) uint8, got {first.shape} {first.dtype}", path)
    height, width = first.shape[:2]
    with tempfile.TemporaryDirectory(prefix="vocagan-video-") as tmpdir, atomic_path(path, suffix=".mp4") as tmp:
        cmd = ffmpeg_command(
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"
        )
        if audio is not None:
            cmd += ["-i", str(_audio_file(audio, Path(tmpdir)))]
        cmd += ["-map", "0:v:0"] + (["-map", "1:a:0", "-c:a", "aac", "-b:a", "160k"] if audio is not None else [])
        cmd += [
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # yuv420p needs even sizes
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(tmp),
        ]
        with open(Path(tmpdir) / "ffmpeg.log", "w+b") as errlog:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errlog)
            assert proc.stdin is not None  # stdin=PIPE
            n = 0
            try:
                for frame in progress(itertools.chain([first], frames), desc="video", total=total, unit="frame"):
                    if frame.shape != first.shape or frame.dtype != np.uint8:
                        raise VocaganError(
                            f"frame {n} is {frame.shape} {frame.dtype}, expected {first.shape} uint8", path
                        )
                    proc.stdin.write(np.ascontiguousarray(frame).tobytes())
                    n += 1
                proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg died: its log says why (below)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            rc = proc.wait()
            if rc != 0:
                errlog.seek(0)
                raise VocaganError(f"ffmpeg failed (exit {rc}): {ffmpeg_error(errlog.read(), 'no message')}", path)
    return path


def _audio_file(audio, tmpdir: Path) -> Path:
    """A path ffmpeg can read: the given file, or a 16-bit wav of (samples, sample_rate)."""
    if isinstance(audio, (str, Path)):
        audio = Path(audio)
        if not audio.is_file():
            raise VocaganError("audio file not found", audio)
        return audio
    import soundfile as sf

    samples, sr = audio
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or len(samples) == 0 or int(sr) <= 0:
        raise VocaganError(f"audio must be (samples 1-D, sample_rate > 0), got {samples.shape}, {sr}")
    out = tmpdir / "audio.wav"
    sf.write(str(out), np.clip(samples, -1, 1), int(sr), subtype="PCM_16")
    return out


# ----------------------------------------------------------------------------- side by side
def error_colors(pred: np.ndarray, gt: np.ndarray, vmax_mm: float, cmap: str = "turbo") -> np.ndarray:
    """Per-vertex error heat-map colours (T, V, 3) float32 in [0, 1] from pred/gt (T, V, 3) metres."""
    import matplotlib

    err_mm = np.linalg.norm(pred - gt, axis=2) * 1000.0  # (T, V)
    return matplotlib.colormaps[cmap](np.clip(err_mm / vmax_mm, 0, 1))[..., :3].astype(np.float32)


def _nice_ceiling(x: float) -> float:
    """Round up to 1, 2 or 5 x 10^k so the colour-bar ticks read well."""
    k = 10 ** np.floor(np.log10(x))
    return float(next(m * k for m in (1, 2, 5, 10) if m * k >= x))


def _overlay(size: int, vmax_mm: float, cmap: str = "turbo") -> np.ndarray:
    """Labels and an error colour bar (mm) for a (size, 3*size) side-by-side frame -> RGBA float32."""
    import matplotlib
    from PIL import Image, ImageDraw, ImageFont

    width = 3 * size
    img = Image.new("RGBA", (width, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=max(10, size // 28))
    pad = max(4, size // 40)
    for i, label in enumerate(("ground truth", "prediction", "error (mm)")):
        draw.text((i * size + pad, pad), label, fill=(235, 235, 235, 255), font=font)
    # Vertical colour bar on the right of the third panel: top = vmax, bottom = 0.
    bar_w, bar_h = max(6, size // 40), size // 2
    x0, y0 = width - pad - bar_w - max(24, size // 10), (size - bar_h) // 2
    ramp = matplotlib.colormaps[cmap](np.linspace(1, 0, bar_h))[:, :3]
    bar = np.ones((bar_h, bar_w, 4), np.uint8) * 255
    bar[:, :, :3] = (np.repeat(ramp[:, None, :], bar_w, axis=1) * 255).astype(np.uint8)
    img.paste(Image.fromarray(bar, "RGBA"), (x0, y0))
    for frac in (0.0, 0.5, 1.0):
        y = y0 + int(round((1 - frac) * (bar_h - 1)))
        draw.line([(x0 + bar_w, y), (x0 + bar_w + pad // 2, y)], fill=(235, 235, 235, 255))
        draw.text((x0 + bar_w + pad, y), f"{frac * vmax_mm:g}", fill=(235, 235, 235, 255), font=font, anchor="lm")
    return np.asarray(img, np.float32) / 255.0


def render_side_by_side(
    pred: np.ndarray,
    gt: np.ndarray,
    faces: np.ndarray,
    size: int = 800,
    backend: str = "auto",
    vmax_mm: float | None = None,
) -> Iterator[np.ndarray]:
    """ground truth | prediction | per-vertex error heat map (with a mm colour bar), one composed
    (size, 3*size, 3) uint8 frame per time step; pred and gt are (T, V, 3) metres of equal shape.
    The colour scale is fixed for the whole sequence (default: 99th percentile of the error)."""
    pred, faces = check_mesh(pred, faces)
    gt, _ = check_mesh(gt, faces)
    if pred.shape != gt.shape:
        raise VocaganError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    if vmax_mm is None:
        vmax_mm = _nice_ceiling(max(float(np.percentile(np.linalg.norm(pred - gt, axis=2), 99)) * 1000, 0.1))
    camera = frame_camera(gt[0])  # one camera for all three panels
    panels = [
        render_frames(gt, faces, size, backend, camera=camera),
        render_frames(pred, faces, size, backend, camera=camera),
        render_frames(pred, faces, size, backend, colors=error_colors(pred, gt, vmax_mm), camera=camera),
    ]
    overlay = _overlay(size, vmax_mm)
    alpha, rgb = overlay[:, :, 3:], overlay[:, :, :3] * 255.0
    for images in zip(*panels, strict=True):  # gt and pred have the same shape
        frame = np.concatenate(images, axis=1).astype(np.float32)
        yield (frame * (1 - alpha) + rgb * alpha + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------- files
def load_vertices(path: str | Path) -> np.ndarray:
    """A (T, V, 3) (or (T, V*3)) vertex sequence from .npy; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise VocaganError("vertices file not found", path)
    try:
        vertices = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a corrupt header raises ValueError/SyntaxError/TokenError/...
        raise VocaganError(f"not a readable .npy array ({' '.join(str(e).split())})", path) from None
    vertices = as_vertex_frames(vertices)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or len(vertices) == 0:
        raise VocaganError(f"expected vertices of shape (T, V, 3) or (T, V*3), got {vertices.shape}", path)
    if not np.issubdtype(vertices.dtype, np.floating):
        raise VocaganError(f"expected float vertices in metres, got dtype {vertices.dtype}", path)
    return vertices


def load_animation(vertices_npy: Path, faces_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """A (T, V, 3) vertices .npy and the faces of a PLY/OBJ with that topology, both validated."""
    from vocagan.formats.mesh import read_mesh

    vertices = load_vertices(vertices_npy)
    _, faces = read_mesh(faces_file)
    if len(faces) == 0:
        raise VocaganError("the mesh has no faces", faces_file)
    if faces.max() >= vertices.shape[1]:
        raise VocaganError(
            f"vertex count mismatch: the faces index {int(faces.max()) + 1}+ vertices but "
            f"{vertices_npy.name} has {vertices.shape[1]} per frame",
            faces_file,
        )
    return check_mesh(vertices, faces, vertices_npy, faces_file)


def render_files(
    vertices_npy: str | Path,
    faces_ply: str | Path,
    out_mp4: str | Path,
    fps: float = 30,
    audio: str | Path | None = None,
    gt: str | Path | None = None,
    size: int = 800,
    backend: str = "auto",
) -> Path:
    """`vocagan render`: vertices .npy (T, V, 3) + a mesh file for the faces -> mp4 (with sound).
    With `gt` (.npy of the same topology): ground truth | prediction | error heat map side by side."""
    vertices_npy, faces_ply = Path(vertices_npy), Path(faces_ply)
    vertices, faces = load_animation(vertices_npy, faces_ply)
    if gt is None:
        frames = render_frames(vertices, faces, size, backend)
    else:
        gt = Path(gt)
        truth, _ = check_mesh(load_vertices(gt), faces, gt, faces_ply)
        if truth.shape[1] != vertices.shape[1]:
            raise VocaganError(
                f"ground truth has {truth.shape[1]} vertices per frame, the prediction {vertices.shape[1]}", gt
            )
        n = min(len(truth), len(vertices))
        if len(truth) != len(vertices):
            log(f"render: prediction has {len(vertices)} frames, ground truth {len(truth)}; using the first {n}")
        vertices, truth = vertices[:n], truth[:n]
        frames = render_side_by_side(vertices, truth, faces, size, backend)
    return write_video(out_mp4, frames, fps, audio=audio, total=len(vertices))
