"""`vocagan animate`: animate a face from any speech file with a trained checkpoint.

audio file (wav/flac/ogg/mp3, any rate, mono/stereo, int/float) -> the checkpoint's own feature
function (`features_at_fps` with the stored FeatureConfig, exactly as at training time) -> the model
(clips up to 20 s in one pass, longer ones in overlapping chunks cross-faded together: bounded memory
and time for any length, no cap; a frozen TorchScript graph when the caller built one,
`MotionModel.compiled`) -> normalised PCA coefficients -> per (style, sample), in the formats asked
for: vertices .npy (T, V, 3) float32 at the output fps (template + decoded mouth offsets), a .glb
(the template, the model's basis as morph targets, the coefficients as weights over time; `morph.py`)
with the audio beside it, the weights as CSV/JSON, optional PLY/OBJ per frame, and an mp4 with the
input audio muxed in.

Stochastic models (VAE/GAN) draw their per-sequence latent from a seeded generator that is reset
for every chunk, so all chunks of one sample share the same latent and the cross-fade joins
continuations of the same performance.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vocagan.errors import VocaganError
from vocagan.frames import chunk_spans, crossfade_in
from vocagan.options import AnimateOptions, VideoOptions, check
from vocagan.utils import atomic_path, log, output_dir, progress, resolve_device

CHUNK_SECONDS = 20.0  # model input per forward pass (attention cost per frame grows with it)
OVERLAP_SECONDS = 4.0  # context shared by consecutive chunks; the cross-fade uses its middle half
WRITE_BLOCK = 512  # frames decoded to vertices at a time (bounded memory for long audio)
FORMATS = ("npy", "glb", "csv", "json")  # what --format can ask for (morph.py: glb targets, weight tables)


@dataclass
class AnimateOutput:
    style: str
    sample: int
    vertices: Path | None = None  # (T, V, 3) float32 .npy
    video: Path | None = None  # mp4 with the input audio
    meshes: list[Path] = field(default_factory=list)  # folders of per-frame PLY/OBJ files
    glb: Path | None = None  # glTF binary: template + morph targets + weights over time
    audio: Path | None = None  # the input audio copied beside the .glb (glTF has no audio)
    weights: list[Path] = field(default_factory=list)  # per-frame morph weights, CSV / JSON
    info: Path | None = None  # <name>.json beside the .npy: fps, counts, the face mesh, the audio

    def files(self) -> list[Path]:
        singles = [self.vertices, self.info, self.glb, self.audio, self.video]
        return [f for f in singles if f is not None] + self.weights + self.meshes


@dataclass
class AnimateResult:
    out_dir: Path
    checkpoint: Path
    audio: Path
    model_name: str
    template: str
    fps: float
    n_frames: int
    audio_seconds: float
    compute_seconds: float  # features + model, all styles and samples (after the warm-up)
    load_seconds: float = 0.0  # checkpoint, audio, output checks
    warmup_seconds: float = 0.0  # the model's first call on a short input (one-time costs)
    total_seconds: float = 0.0  # the whole call, wall clock
    mesh: Path | None = None  # the face mesh (template, faces, colours) the vertices belong to
    outputs: list[AnimateOutput] = field(default_factory=list)

    def files(self) -> list[Path]:
        return ([self.mesh] if self.mesh else []) + [f for o in self.outputs for f in o.files()]

    def summary(self) -> str:
        rtf = self.compute_seconds / max(self.audio_seconds, 1e-9)
        rest = max(self.total_seconds - self.load_seconds - self.warmup_seconds - self.compute_seconds, 0.0)
        lines = [
            f"animated {self.audio} ({self.audio_seconds:.2f} s -> {self.n_frames} frames at {self.fps:g} fps) "
            f"with {self.model_name} ({self.checkpoint}), template {self.template}",
            f"  timings (wall clock): {self.total_seconds:.2f} s in all = loading {self.load_seconds:.2f} s "
            f"(checkpoint, audio) + model warm-up {self.warmup_seconds:.2f} s (first call, once) + features and "
            f"model {self.compute_seconds:.3f} s ({rtf:.4f} x real time for {len(self.outputs)} output(s)) + "
            f"writing and video {rest:.2f} s",
        ]
        if self.mesh:
            lines.append(f"  face mesh: {self.mesh}")
        for o in self.outputs:
            lines.append(f"  style {o.style}" + (f", sample {o.sample}" if len(self.outputs) > 1 else "") + ":")
            for f in o.files():
                lines.append(f"    {f}/ ({len(list(f.iterdir()))} files)" if f.is_dir() else f"    {f}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- chunked prediction
@contextlib.contextmanager
def _whole_clip_feature_norm(model, features: np.ndarray):
    """Models that z-score their audio features per sequence (a front end with `utterance_norm`)
    would see per-chunk statistics in chunked inference. Normalise once over the whole clip with the
    model's own function and switch the per-sequence step off while the chunks run, so chunked
    output equals one pass over the whole clip (up to attention context). Yields the features to use."""
    fronts = [
        m
        for m in model.modules()
        if getattr(m, "utterance_norm", False) and hasattr(m, "normalise") and not getattr(m, "causal", False)
    ]  # a causal front end normalises over a window of past frames: local already
    if not fronts or not getattr(getattr(model, "hear", None), "passthrough", True):
        # the front end normalises what the model hears (a layer mix, an encoder's output), not these
        # inputs: each chunk is normalised on its own (chunks are 20 s, the statistics settle well before)
        yield features
        return
    whole = torch.from_numpy(np.ascontiguousarray(features, np.float32)).unsqueeze(0)  # (1, T, F)
    normed = fronts[0].normalise(whole, torch.ones(whole.shape[:2], dtype=torch.bool))[0].numpy()
    for m in fronts:
        m.utterance_norm = False
    try:
        yield normed
    finally:
        for m in fronts:
            m.utterance_norm = True


@torch.no_grad()
def predict_motion(
    model,
    features: np.ndarray,
    style: int,
    n_samples: int = 1,
    seed: int = 0,
    chunk: int = 600,
    overlap: int = 120,
    device="cpu",
) -> np.ndarray:
    """features (T, F) -> normalised coefficients (n_samples, T, K) float32 for one style index.

    Chunks of <= `chunk` frames overlapping by `overlap` are predicted independently and
    cross-faded (weights sum to one). Each chunk re-seeds the generator, so a stochastic model's
    per-sequence latent is the same in every chunk of a sample.
    """
    device = torch.device(device)
    n_frames = len(features)
    spans = chunk_spans(n_frames, chunk, overlap)
    out = np.zeros((n_samples, n_frames, model.motion_dim), np.float64)
    fade = crossfade_in(overlap)
    style_t = torch.tensor([style], dtype=torch.long, device=device)
    fast = model.compiled(build=False)  # a graph a long-running caller built (MotionModel.compiled)
    if fast is not None and len(spans) == 1 and n_samples == 1 and device.type == "cpu":  # one deterministic pass
        audio = torch.from_numpy(np.ascontiguousarray(features, np.float32)).unsqueeze(0)
        model.check_inputs(audio, style_t)
        return fast(audio, style_t, torch.ones(audio.shape[:2], dtype=torch.bool)).numpy()  # (1, T, K)
    with contextlib.ExitStack() as stack:
        if len(spans) > 1:
            features = stack.enter_context(_whole_clip_feature_norm(model, features))
        for k, (a, b) in enumerate(progress(spans, desc="predict", unit="chunk") if len(spans) > 1 else spans):
            _predict_chunk(
                model,
                features,
                style_t,
                n_samples,
                seed,
                device,
                out,
                a,
                b,
                fade if k > 0 else None,
                fade if k < len(spans) - 1 else None,
            )
    return out.astype(np.float32)


def _predict_chunk(model, features, style_t, n_samples, seed, device, out, a, b, fade_in, fade_out) -> None:
    """Predict frames [a, b) and add them, weighted by the cross-fade ramps, into out (S, T, K)."""
    audio = torch.from_numpy(np.ascontiguousarray(features[a:b], np.float32)).unsqueeze(0).to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        pred = model.predict(audio, style_t, n_samples=n_samples)  # (S, 1, L, K)
    pred = pred[:, 0].float().cpu().numpy()  # (S, L, K)
    w = np.ones(b - a)
    if fade_in is not None:
        w[: len(fade_in)] = fade_in
    if fade_out is not None:
        w[-len(fade_out) :] = 1.0 - fade_out
    out[:, a:b] += pred * w[None, :, None]


def audio_features(
    ckpt, samples: np.ndarray, sr: int, fps: float, where=None, encoder: str | None = None
) -> np.ndarray:
    """The checkpoint's own features of raw audio at the model fps: (T, F); T = round(duration * fps).
    encoder: another copy of the frozen speech encoder the model was trained with (its folder moved)."""
    from vocagan.frames import audio_frames
    from vocagan.prep.features import encoder_for, features_at_fps, with_encoder

    spec = with_encoder(ckpt.features, encoder)
    if spec.kind == "deepspeech":
        raise VocaganError(
            "this model was trained on precomputed DeepSpeech windows (features.kind=deepspeech), "
            "which cannot be computed for new audio; retrain with features.kind=logmel (the default, "
            "computed from raw audio) to animate any speech file",
            where,
        )
    if spec.kind == "encoder" and not spec.encoder_finetune:
        encoder_for(spec, recorded=ckpt.encoder or {})  # the folder is there and holds the same weights
    n_frames = audio_frames(len(samples), sr, int(fps))
    if n_frames < 1:
        raise VocaganError(
            f"audio too short ({len(samples)} samples at {sr} Hz is less than one frame at {fps:g} fps)", where
        )
    feats = features_at_fps(samples, sr, spec, fps, n_frames)
    if feats.shape[1] != ckpt.audio_dim:
        raise VocaganError(f"features have width {feats.shape[1]} but the model expects {ckpt.audio_dim}", where)
    return feats


# ----------------------------------------------------------------------------- animate
def _resolve_styles(ckpt, style: str | None) -> list[str]:
    styles = ckpt.styles
    if style is None:
        return styles[:1]
    if style == "all":
        return list(styles)
    if style not in styles:
        raise VocaganError(f"unknown style '{style}'; valid: all, {', '.join(styles)}", ckpt.path)
    return [style]


def resolve_template(ckpt, prepared, template: str | None) -> tuple[str, np.ndarray, np.ndarray | None]:
    """-> (name, vertices (V, 3), faces (F, 3) from a mesh file or None)."""
    names = prepared.template_names
    n_vertices = int(prepared.meta["n_vertices"])
    if template is None:
        name = ckpt.styles[0] if ckpt.styles and ckpt.styles[0] in names else names[0]
        return name, prepared.template(name), None
    if template in names:
        return template, prepared.template(template), None
    path = Path(template)
    if path.suffix.lower() in (".ply", ".obj") or path.exists():
        from vocagan.formats.mesh import read_mesh

        verts, faces = read_mesh(path)
        if len(verts) != n_vertices:
            raise VocaganError(f"template has {len(verts)} vertices but the model's topology has {n_vertices}", path)
        return path.name, verts, faces if len(faces) else None
    raise VocaganError(
        f"unknown template '{template}': not a subject of this checkpoint ({', '.join(names)}) nor a PLY/OBJ file",
        ckpt.path,
    )


def _warm_up(model, ckpt, device) -> None:
    """One forward pass on half a second of zero features: the first call of a model pays one-time
    costs (kernel selection, allocator growth) that are not the cost of animating."""
    n = max(2, int(round(0.5 * ckpt.fps)))
    predict_motion(model, np.zeros((n, ckpt.audio_dim), np.float32), 0, 1, 0, chunk=n, overlap=0, device=device)


def _write_vertices(path: Path, prepared, coefs: np.ndarray, template: np.ndarray) -> Path:
    """coefs (T, K) -> (T, V, 3) float32 .npy, decoded and written in blocks (atomic)."""
    n_frames, n_vertices = len(coefs), len(template)
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_frames, n_vertices, 3))
        for a in range(0, n_frames, WRITE_BLOCK):
            out[a : a + WRITE_BLOCK] = prepared.to_vertices(coefs[a : a + WRITE_BLOCK], template)
        out.flush()
        del out
    return path


def _write_renders(out, out_dir, name, vertices, faces, colors, ply, obj, video, size, backend, fps, audio) -> None:
    """PLY/OBJ folders and the mp4 of one output from its (T, V, 3) vertices (a memory map)."""
    from vocagan.formats.mesh import write_mesh_sequence

    for kind, wanted in (("ply", ply), ("obj", obj)):
        if wanted:
            out.meshes.append(write_mesh_sequence(out_dir / f"{name}_{kind}", vertices, faces, colors, kind))
    if video:
        from vocagan.render import render_frames
        from vocagan.video import write_video

        assert faces is not None  # checked before any work
        out.video = write_video(
            out_dir / f"{name}.mp4",
            render_frames(vertices, faces, size, backend, colors=colors),
            fps,
            audio=audio,
            total=len(vertices),
        )


def animate(
    checkpoint: str | Path,
    audio: str | Path,
    out_dir: str | Path,
    template: str | None = None,
    style: str | None = None,
    samples: int = 1,
    fps: float | None = None,
    video: bool = True,
    ply: bool = False,
    obj: bool = False,
    size: int = 800,
    *,
    seed: int = 0,
    device: str = "auto",
    backend: str = "auto",
    chunk_seconds: float = CHUNK_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
    formats: tuple[str, ...] | list[str] = ("npy",),
    encoder: str | None = None,
) -> AnimateResult:
    """Animate `audio` with the model in `checkpoint`; outputs go to `out_dir` (see module docstring).

    template: a subject stored in the checkpoint or a PLY/OBJ mesh of the same topology (default:
    the first training subject). style: a training subject or 'all' (default: the first one).
    samples: per style (VAE/GAN draw different latents; deterministic models repeat). fps: output
    frame rate (default: the model's); motion is interpolated in coefficient space. formats: any of
    FORMATS: "npy" vertices, "glb" (the template, the model's motion basis as morph targets, the
    weights over time; the audio copied beside it), "csv"/"json" (the morph weights per frame).
    encoder: where the frozen speech encoder the model was trained with is now, when its recorded
    folder is gone.
    """
    from vocagan.checkpoint import load_checkpoint
    from vocagan.formats.audio import load_audio
    from vocagan.frames import resample_frames
    from vocagan.video import write_animation_info

    t_start = time.perf_counter()
    checkpoint, audio, out_dir = Path(checkpoint), Path(audio), Path(out_dir)
    samples, fps = check(AnimateOptions, samples=samples, fps=fps)
    size = check(VideoOptions, size=size)
    output_dir(out_dir)
    dev = resolve_device(device)
    model, ckpt = load_checkpoint(checkpoint, device=dev)
    if encoder is not None and ckpt.features.kind == "encoder" and ckpt.features.encoder_finetune:
        log(f"note: --encoder is not needed: {checkpoint} holds its fine-tuned encoder")
        encoder = None
    prepared = ckpt.prepared  # PCA basis, templates, faces
    styles = _resolve_styles(ckpt, style)
    template_name, template_verts, template_faces = resolve_template(ckpt, prepared, template)
    faces = template_faces if template_faces is not None else (prepared.faces if len(prepared.faces) else None)
    colors = prepared.template_colors(template)
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise VocaganError(f"unknown output format(s) {', '.join(unknown) or '(none)'}; valid: {', '.join(FORMATS)}")
    if (video or obj or "glb" in formats) and faces is None:
        raise VocaganError(
            "the checkpoint holds no faces (trained without a template PLY): pass --template "
            "mesh.ply with the same topology, or --no-video",
            checkpoint,
        )
    x, sr = load_audio(audio)
    model_fps, out_fps = ckpt.fps, float(fps or ckpt.fps)

    warm = time.perf_counter()
    _warm_up(model, ckpt, dev)
    started = time.perf_counter()
    feats = audio_features(ckpt, x, sr, model_fps, where=audio, encoder=encoder)  # (T, F) at model fps
    chunk = max(8, int(round(chunk_seconds * model_fps)))
    overlap = min(int(round(overlap_seconds * model_fps)), chunk // 2)
    coefs = {
        s: predict_motion(model, feats, ckpt.style_index(s), samples, seed, chunk, overlap, dev) for s in styles
    }  # style -> (S, T, K)
    compute = time.perf_counter() - started
    n_out = len(feats) if out_fps == model_fps else max(1, int(round(len(x) * out_fps / sr)))  # as audio_frames

    result = AnimateResult(
        out_dir=out_dir,
        checkpoint=checkpoint,
        audio=audio,
        model_name=ckpt.model_name,
        template=template_name,
        fps=out_fps,
        n_frames=n_out,
        audio_seconds=len(x) / sr,
        compute_seconds=compute,
        load_seconds=warm - t_start,
        warmup_seconds=started - warm,
    )
    if faces is not None and "npy" in formats:  # beside the vertices: render / export-html read it from there
        from vocagan.formats.mesh import write_ply

        result.mesh = out_dir / f"{audio.stem}_mesh.ply"
        write_ply(result.mesh, template_verts, faces, colors=colors)
    need_vertices = "npy" in formats or video or ply or obj
    with tempfile.TemporaryDirectory(prefix=".vocagan-", dir=out_dir) as scratch:
        for s in styles:
            for k in range(samples):
                c = coefs[s][k]
                if out_fps != model_fps:
                    c = resample_frames(c, model_fps, out_fps, n_out)  # (T_out, K)
                name = f"{audio.stem}_{s}" + (f"_sample{k}" if samples > 1 else "")
                out = AnimateOutput(style=s, sample=k)
                if {"glb", "csv", "json"} & set(formats):
                    from vocagan.morph import from_coefficients, write_files

                    extras = {"style": s, "generator": "vocagan animate"}
                    anim = from_coefficients(prepared, c, template_verts, faces, out_fps, extras)
                    anim.colors = colors
                    out.glb, out.audio, out.weights = write_files(anim, out_dir, name, formats, audio)
                if need_vertices:
                    folder = out_dir if "npy" in formats else Path(scratch)
                    npy = _write_vertices(folder / f"{name}.npy", prepared, c, template_verts)
                    out.vertices = npy if "npy" in formats else None
                    if out.vertices is not None:
                        out.info = write_animation_info(
                            npy,
                            mesh=result.mesh,
                            fps=out_fps,
                            audio=audio,
                            checkpoint=checkpoint,
                            model=ckpt.model_name,
                            style=s,
                            sample=k,
                            template=template_name,
                        )
                    _write_renders(
                        out,
                        out_dir,
                        name,
                        np.load(npy, mmap_mode="r"),
                        faces,
                        colors,
                        ply,
                        obj,
                        video,
                        size,
                        backend,
                        out_fps,
                        audio,
                    )
                result.outputs.append(out)
    result.total_seconds = time.perf_counter() - t_start
    log(f"animate: {len(result.outputs)} output(s) in {out_dir}")
    return result
