"""Videos of vertex animations: H.264 mp4 encoding with sound, the ground truth | prediction | error
side-by-side composition, and `vocagan render` on files: vertices .npy + its face mesh, named by the
<name>.json description `animate` writes beside the .npy (or given explicitly; a mesh of another
vertex count is refused).

Frames come from `vocagan.render` (camera, shading, rasterisers). Videos are H.264 (yuv420p,
+faststart) with AAC audio, encoded by the ffmpeg that imageio-ffmpeg ships, written atomically.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.frames import as_vertex_frames
from vocagan.options import VideoOptions, check
from vocagan.render import check_mesh, frame_camera, render_frames
from vocagan.utils import atomic_path, atomic_write_json, existing_file, log, output_file, progress


# ----------------------------------------------------------------------------- ffmpeg
def ffmpeg_command(*args: str) -> list[str]:
    """The command line of imageio-ffmpeg's bundled ffmpeg with `args`: overwrite, errors only."""
    import imageio_ffmpeg

    return [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *args]


def check_audio(path: str | Path) -> Path:
    """An audio file ffmpeg can decode (its first second is decoded), else one VocaganError naming it:
    checked before any frame is rendered, so a bad sound file fails at once and by its own name."""
    path = existing_file(path, "audio file")
    probe = subprocess.run(ffmpeg_command("-t", "1", "-i", str(path), "-vn", "-f", "null", "-"), capture_output=True)
    if probe.returncode != 0:
        raise VocaganError(f"cannot read the audio ({ffmpeg_error(probe.stderr, 'ffmpeg failed')})", path)
    return path


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
        existing_file(audio, "audio file")
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
    colors: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """ground truth | prediction | per-vertex error heat map (with a mm colour bar), one composed
    (size, 3*size, 3) uint8 frame per time step; pred and gt are (T, V, 3) metres of equal shape.
    The colour scale is fixed for the whole sequence (default: 99th percentile of the error);
    `colors` (V, 3): the mesh's own colours for the first two panels."""
    pred, faces = check_mesh(pred, faces)
    gt, _ = check_mesh(gt, faces)
    if pred.shape != gt.shape:
        raise VocaganError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    if vmax_mm is None:
        vmax_mm = _nice_ceiling(max(float(np.percentile(np.linalg.norm(pred - gt, axis=2), 99)) * 1000, 0.1))
    camera = frame_camera(gt[0])  # one camera for all three panels
    panels = [
        render_frames(gt, faces, size, backend, colors=colors, camera=camera),
        render_frames(pred, faces, size, backend, colors=colors, camera=camera),
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
    existing_file(path, "vertices file (.npy)")
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


INFO_FORMAT = "vocagan animation"  # the "format" of the <name>.json written beside a vertex sequence


def write_animation_info(vertices_npy: str | Path, mesh: str | Path | None, fps: float, audio=None, **extra) -> Path:
    """<name>.json beside a vertex sequence <name>.npy: what `render` and `export-html` need to show it
    (the face mesh with its faces and colours, the frame rate, the sound) and where it came from.
    Paths in the same folder are stored by name (the folder can be moved), others absolute."""
    npy = Path(vertices_npy)
    shape = np.load(npy, mmap_mode="r").shape

    def where(p):
        p = Path(p)
        return p.name if p.parent.resolve() == npy.parent.resolve() else str(p.resolve())

    info = {
        "format": INFO_FORMAT,
        "version": 1,
        "vertices": npy.name,
        "n_frames": int(shape[0]),
        "n_vertices": int(shape[1]),
        "fps": float(fps),
        "mesh": where(mesh) if mesh is not None else None,
        "audio": where(audio) if audio is not None else None,
        **{k: str(v) if isinstance(v, Path) else v for k, v in extra.items()},
    }
    out = npy.with_suffix(".json")
    atomic_write_json(out, info)
    return out


def read_animation_info(vertices_npy: str | Path) -> dict | None:
    """The description `write_animation_info` left beside a vertex sequence (paths resolved), or None
    when there is none (a .json of another kind is not ours and is ignored)."""
    path = Path(vertices_npy).with_suffix(".json")
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise VocaganError(f"unreadable animation description ({' '.join(str(e).split())})", path) from None
    if not isinstance(info, dict) or info.get("format") != INFO_FORMAT:
        return None
    for key in ("mesh", "audio"):
        if info.get(key) is not None:
            info[key] = path.parent / str(info[key])  # an absolute path stays absolute
    info["path"] = path
    return info


@dataclass
class Animation:
    """A vertex sequence with everything needed to show it."""

    vertices: np.ndarray  # (T, V, 3) float32
    faces: np.ndarray  # (F, 3) int32
    colors: np.ndarray | None  # (V, 3) per-vertex colours of the mesh, or None (uniform grey)
    mesh: Path  # where the faces came from
    fps: float | None = None  # from the description beside the .npy
    audio: Path | None = None  # from the description, when that file still exists


def load_animation(vertices_npy: str | Path, mesh: str | Path | None = None) -> Animation:
    """A (T, V, 3) vertices .npy and its face mesh: `mesh` when given, else the one named in the
    description beside the .npy (written by `animate`). The mesh must have exactly the animation's
    vertex count: another topology would draw shredded spikes, so it is refused."""
    from vocagan.formats.mesh import read_mesh_with_colors

    npy = Path(vertices_npy)
    vertices = load_vertices(npy)
    info = read_animation_info(npy)
    if info is not None and info.get("n_vertices") not in (None, vertices.shape[1]):
        raise VocaganError(
            f"describes {info['n_vertices']} vertices per frame but {npy.name} has {vertices.shape[1]} (stale .json?)",
            info["path"],
        )
    if mesh is None:
        if info is None or info.get("mesh") is None:
            raise VocaganError(
                f"no face mesh given and no {npy.stem}.json beside it naming one (vocagan animate writes it); "
                "pass --faces MESH.ply with the animation's topology",
                npy,
            )
        mesh = info["mesh"]
    mesh = Path(mesh)
    mesh_vertices, faces, colors = read_mesh_with_colors(mesh)
    if len(faces) == 0:
        raise VocaganError("the mesh has no faces", mesh)
    if len(mesh_vertices) != vertices.shape[1]:
        raise VocaganError(
            f"topology mismatch: the mesh has {len(mesh_vertices)} vertices, {npy.name} has {vertices.shape[1]} per "
            "frame; pass the mesh the animation was made with",
            mesh,
        )
    vertices, faces = check_mesh(vertices, faces, npy, mesh)
    audio = info.get("audio") if info else None
    fps = info.get("fps") if info else None
    return Animation(
        vertices,
        faces,
        colors,
        mesh,
        float(fps) if isinstance(fps, (int, float)) and fps > 0 else None,
        audio if audio is not None and Path(audio).is_file() else None,
    )


def render_files(
    vertices_npy: str | Path,
    faces_ply: str | Path | None,
    out_mp4: str | Path,
    fps: float | None = None,
    audio: str | Path | None = None,
    gt: str | Path | None = None,
    size: int = 800,
    backend: str = "auto",
) -> Path:
    """`vocagan render`: vertices .npy (T, V, 3) + its face mesh (default: the one its .json names)
    -> mp4 with sound (default: the .json's audio; fps: given, else the .json's, else 30). With `gt`
    (.npy of the same topology): ground truth | prediction | error heat map side by side."""
    size, fps, backend = check(VideoOptions, size=size, fps=fps, backend=backend)
    output_file(out_mp4)
    if audio is not None:
        check_audio(audio)
    anim = load_animation(vertices_npy, faces_ply)
    vertices, faces, colors = anim.vertices, anim.faces, anim.colors
    if audio is None and anim.audio is not None:
        audio = anim.audio
        log(f"render: sound from {audio} (named in {Path(vertices_npy).with_suffix('.json').name})")
    fps = fps or anim.fps or 30
    if gt is None:
        frames = render_frames(vertices, faces, size, backend, colors=colors)
    else:
        gt = Path(gt)
        truth = load_vertices(gt)
        if truth.shape[1] != vertices.shape[1]:
            raise VocaganError(
                f"ground truth has {truth.shape[1]} vertices per frame, the prediction {vertices.shape[1]}", gt
            )
        truth, _ = check_mesh(truth, faces, gt, anim.mesh)
        n = min(len(truth), len(vertices))
        if len(truth) != len(vertices):
            log(f"render: prediction has {len(vertices)} frames, ground truth {len(truth)}; using the first {n}")
        vertices, truth = vertices[:n], truth[:n]
        frames = render_side_by_side(vertices, truth, faces, size, backend, colors=colors)
    return write_video(out_mp4, frames, fps, audio=audio, total=len(vertices))
