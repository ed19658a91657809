"""glTF 2.0 binary (.glb) with morph targets: one mesh, K targets, their weights over time.

What artists load into Blender, Unity, Unreal or three.js. A `MorphAnimation` is a rest mesh, K
per-vertex displacements (morph targets, metres) and a (T, K) weight track sampled at `times`: the
animated mesh at frame t is `base + sum_k weights[t, k] * targets[k]` (`MorphAnimation.vertices`),
which is exactly what glTF's morph targets with an animation channel on `weights` compute.

Layout written by `glb_bytes` (checked by the Khronos glTF-Validator in the tests):
- one scene, one node, one mesh with one triangle primitive (POSITION, NORMAL and COLOR_0 when given,
  indices; with vertex colours the material's base colour is white, so the colours show as they are);
- each target as a *sparse* accessor over the vertices that move in any target (the mouth crop: a
  few hundred of 5023 FLAME vertices), sharing one index list; optional NORMAL deltas likewise;
- `mesh.extras.targetNames` (the names three.js, Blender and Unity read) and `mesh.weights` zeros;
- one animation, one LINEAR sampler: input = frame times (s), output = T x K weights;
- `asset.extras`: fps and anything the caller adds (the audio file beside the .glb: glTF has no audio).

Written through pygltflib's typed schema classes; `read_glb` reads back what this module writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.utils import atomic_write_bytes


@dataclass
class MorphAnimation:
    """A rest mesh, morph targets and their weights over time (see module docstring)."""

    base: np.ndarray  # (V, 3) float32 rest vertices, metres
    faces: np.ndarray  # (F, 3) int triangles
    targets: np.ndarray  # (K, V, 3) float32 displacements, metres
    names: list[str]  # K target names
    times: np.ndarray  # (T,) seconds, strictly increasing
    weights: np.ndarray  # (T, K) float32
    fps: float
    normals: np.ndarray | None = None  # (V, 3) unit rest normals
    target_normals: np.ndarray | None = None  # (K, V, 3) normal deltas
    extras: dict = field(default_factory=dict)  # asset.extras (audio file name, source, ...)
    colors: np.ndarray | None = None  # (V, 3) linear RGB in [0, 1] per vertex (skin, lips, mouth, eyes)

    def __post_init__(self) -> None:
        k = len(self.targets)
        if self.targets.ndim != 3 or self.targets.shape[1:] != self.base.shape or self.base.shape[1:] != (3,):
            raise ValueError(f"targets {self.targets.shape} do not match base {self.base.shape}")
        if len(self.names) != k or self.weights.shape != (len(self.times), k):
            raise ValueError(
                f"{len(self.names)} names, weights {self.weights.shape} for {k} targets, {len(self.times)} times"
            )

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def vertices(self, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
        """The animated mesh (T, V, 3) float32 of the selected frames: base + weights @ targets."""
        w = np.asarray(self.weights[frames], np.float32)
        flat = w @ self.targets.reshape(len(self.targets), -1)
        return (self.base[None] + flat.reshape(len(w), *self.base.shape)).astype(np.float32)


def _moving(anim: MorphAnimation) -> np.ndarray:
    """Vertices any target (or target normal) moves: the sparse index list (sorted, as glTF requires)."""
    moves = (anim.targets != 0).any(axis=(0, 2))
    if anim.target_normals is not None:
        moves |= (anim.target_normals != 0).any(axis=(0, 2))
    return np.nonzero(moves)[0]


def glb_bytes(anim: MorphAnimation, generator: str = "vocagan") -> bytes:
    """The .glb file content of `anim` (see module docstring for the layout)."""
    import pygltflib as g

    base = np.ascontiguousarray(anim.base, np.float32)
    n_vertices, n_targets = len(base), len(anim.targets)
    times = np.asarray(anim.times, np.float32)
    if len(times) < 1 or (len(times) > 1 and not (np.diff(times) > 0).all()):
        raise VocaganError("animation times must be strictly increasing")
    blob = bytearray()
    views: list = []
    accessors: list = []

    def view(data: bytes, target: int | None = None) -> int:
        blob.extend(b"\0" * (-len(blob) % 4))  # every view starts 4-byte aligned
        views.append(g.BufferView(buffer=0, byteOffset=len(blob), byteLength=len(data), target=target))
        blob.extend(data)
        return len(views) - 1

    def accessor(a) -> int:
        accessors.append(a)
        return len(accessors) - 1

    index_type, index_dtype = (g.UNSIGNED_SHORT, "<u2") if n_vertices < 65535 else (g.UNSIGNED_INT, "<u4")
    moving = _moving(anim)
    sparse_indices = view(moving.astype(index_dtype).tobytes()) if n_targets and len(moving) else None

    def vec3(values: np.ndarray, sparse: bool = False, bounds: bool = False) -> int:
        """A VEC3 float accessor over all vertices: dense, or sparse over `moving` (zeros elsewhere)."""
        a = g.Accessor(componentType=g.FLOAT, count=n_vertices, type=g.VEC3)
        if sparse:
            rows = np.ascontiguousarray(values[moving], "<f4")
            a.byteOffset = None  # a sparse accessor without bufferView must not state an offset
            a.sparse = g.Sparse(
                count=len(moving),
                indices=g.AccessorSparseIndices(bufferView=sparse_indices, componentType=index_type),
                values=g.AccessorSparseValues(bufferView=view(rows.tobytes())),
            )
            seen = rows if len(moving) == n_vertices else np.vstack([rows, np.zeros((1, 3), np.float32)])
        else:
            seen = np.ascontiguousarray(values, "<f4")
            a.bufferView = view(seen.tobytes(), g.ARRAY_BUFFER)
        if bounds:  # required for POSITION, also of targets; computed on the float32 values stored
            a.min, a.max = seen.min(0).tolist(), seen.max(0).tolist()
        return accessor(a)

    faces = np.asarray(anim.faces)
    indices = accessor(
        g.Accessor(
            bufferView=view(faces.astype(index_dtype).tobytes(), g.ELEMENT_ARRAY_BUFFER),
            componentType=index_type,
            count=int(faces.size),
            type=g.SCALAR,
        )
    )
    attributes = g.Attributes(POSITION=vec3(base, bounds=True))
    if anim.normals is not None:
        attributes.NORMAL = vec3(anim.normals)
    if anim.colors is not None:
        attributes.COLOR_0 = vec3(np.clip(np.asarray(anim.colors, np.float32), 0.0, 1.0))
    targets = []
    for k in range(n_targets):
        target = g.Attributes(POSITION=vec3(anim.targets[k], sparse=len(moving) > 0, bounds=True))
        if anim.target_normals is not None:
            target.NORMAL = vec3(anim.target_normals[k], sparse=len(moving) > 0)
        targets.append(target)
    times_acc = accessor(
        g.Accessor(
            bufferView=view(times.astype("<f4").tobytes()),
            componentType=g.FLOAT,
            count=len(times),
            type=g.SCALAR,
            min=[float(times[0])],
            max=[float(times[-1])],
        )
    )
    weights_acc = accessor(
        g.Accessor(
            bufferView=view(np.ascontiguousarray(anim.weights, "<f4").tobytes()),
            componentType=g.FLOAT,
            count=int(anim.weights.size),
            type=g.SCALAR,
        )
    )
    blob.extend(b"\0" * (-len(blob) % 4))
    primitive = g.Primitive(
        attributes=attributes, indices=indices, material=0, mode=g.TRIANGLES, targets=targets or None
    )
    gltf = g.GLTF2(
        asset=g.Asset(version="2.0", generator=generator, extras={"fps": float(anim.fps), **anim.extras}),
        scene=0,
        scenes=[g.Scene(nodes=[0])],
        nodes=[g.Node(mesh=0, name="face")],
        meshes=[
            g.Mesh(
                name="face",
                primitives=[primitive],
                weights=[0.0] * n_targets or None,
                extras={"targetNames": list(anim.names)},
            )
        ],
        materials=[
            g.Material(
                name="skin",
                doubleSided=True,
                pbrMetallicRoughness=g.PbrMetallicRoughness(
                    baseColorFactor=[1.0, 1.0, 1.0, 1.0] if anim.colors is not None else [0.78, 0.78, 0.78, 1.0],
                    metallicFactor=0.0,
                    roughnessFactor=0.6,
                ),
            )
        ],
        animations=[
            g.Animation(
                name="speech",
                channels=[g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=0, path="weights"))],
                samplers=[g.AnimationSampler(input=times_acc, output=weights_acc, interpolation="LINEAR")],
            )
        ]
        if n_targets
        else [],
        accessors=accessors,
        bufferViews=views,
        buffers=[g.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(bytes(blob))
    return bytes(b"".join(gltf.save_to_bytes()))


def write_glb(path: str | Path, anim: MorphAnimation) -> Path:
    """Write `anim` as a .glb (atomically)."""
    path = Path(path)
    atomic_write_bytes(path, glb_bytes(anim))
    return path


# ----------------------------------------------------------------------------- reading
def read_glb(source: str | Path | bytes) -> MorphAnimation:
    """Read a .glb written by `glb_bytes` (one mesh, one primitive, morph targets, one weights track)
    back into a MorphAnimation. Other glTF files are refused with a one-line reason."""
    import pygltflib as g

    where = None if isinstance(source, bytes) else Path(source)
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as e:
        raise VocaganError(f"cannot read ({e.strerror})", where) from None
    if data[:4] != b"glTF":
        raise VocaganError("not a binary glTF file (.glb): bad magic", where)
    try:
        gltf = g.GLTF2.load_from_bytes(data)
    except Exception as e:  # noqa: BLE001 - pygltflib raises JSON/struct/key errors for corrupt files
        raise VocaganError(f"corrupt .glb ({type(e).__name__}: {e})", where) from None
    blob = gltf.binary_blob() or b""

    def read(index: int) -> np.ndarray:
        a = gltf.accessors[index]
        width = {g.SCALAR: 1, g.VEC3: 3}.get(a.type)
        dtype = {g.FLOAT: "<f4", g.UNSIGNED_SHORT: "<u2", g.UNSIGNED_INT: "<u4", g.UNSIGNED_BYTE: "u1"}.get(
            a.componentType
        )
        if width is None or dtype is None:
            raise VocaganError(f"accessor {index}: unsupported type {a.type}/{a.componentType}", where)
        out = np.zeros((a.count, width), np.dtype(dtype))
        if a.bufferView is not None:
            out[:] = _view(gltf, blob, a.bufferView, (a.byteOffset or 0), a.count * width, dtype).reshape(-1, width)
        if a.sparse is not None:
            s = a.sparse
            idx_dtype = {g.UNSIGNED_SHORT: "<u2", g.UNSIGNED_INT: "<u4", g.UNSIGNED_BYTE: "u1"}[s.indices.componentType]
            rows = _view(gltf, blob, s.indices.bufferView, s.indices.byteOffset or 0, s.count, idx_dtype)
            out[rows.astype(np.int64)] = _view(
                gltf, blob, s.values.bufferView, s.values.byteOffset or 0, s.count * width, dtype
            ).reshape(-1, width)
        return out if width > 1 else out[:, 0]

    try:
        if len(gltf.meshes) != 1 or len(gltf.meshes[0].primitives) != 1:
            raise VocaganError("expected one mesh with one primitive (a vocagan .glb)", where)
        mesh = gltf.meshes[0]
        prim = mesh.primitives[0]
        base = read(prim.attributes.POSITION).astype(np.float32)
        faces = read(prim.indices).astype(np.int64).reshape(-1, 3)
        prim_targets = [t if isinstance(t, dict) else t.__dict__ for t in (prim.targets or [])]  # loaded as dicts
        targets = (
            np.stack([read(t["POSITION"]) for t in prim_targets]).astype(np.float32)
            if prim_targets
            else np.zeros((0, *base.shape), np.float32)
        )
        normals = read(prim.attributes.NORMAL).astype(np.float32) if prim.attributes.NORMAL is not None else None
        colors = read(prim.attributes.COLOR_0).astype(np.float32) if prim.attributes.COLOR_0 is not None else None
        target_normals = None
        if prim_targets and all(t.get("NORMAL") is not None for t in prim_targets):
            target_normals = np.stack([read(t["NORMAL"]) for t in prim_targets]).astype(np.float32)
        names = list((mesh.extras or {}).get("targetNames") or [f"target{k}" for k in range(len(targets))])
        if gltf.animations:
            sampler = gltf.animations[0].samplers[gltf.animations[0].channels[0].sampler]
            times = read(sampler.input).astype(np.float64)
            weights = read(sampler.output).astype(np.float32).reshape(len(times), len(targets))
        else:
            times, weights = np.zeros(1), np.zeros((1, len(targets)), np.float32)
        extras = dict(gltf.asset.extras or {})
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise VocaganError(f"not a .glb this reader understands ({type(e).__name__}: {e})", where) from None
    fps = float(extras.pop("fps", 0) or (1.0 / np.median(np.diff(times)) if len(times) > 1 else 30.0))
    return MorphAnimation(
        base=base,
        faces=faces,
        targets=targets,
        names=names,
        times=times,
        weights=weights,
        fps=fps,
        normals=normals,
        target_normals=target_normals,
        extras=extras,
        colors=colors,
    )


def _view(gltf, blob: bytes, index: int, offset: int, count: int, dtype: str) -> np.ndarray:
    bv = gltf.bufferViews[index]
    start = (bv.byteOffset or 0) + offset
    size = np.dtype(dtype).itemsize * count
    if start + size > (bv.byteOffset or 0) + bv.byteLength or start + size > len(blob):
        raise ValueError(f"bufferView {index} too short")
    return np.frombuffer(blob, dtype=dtype, count=count, offset=start)
