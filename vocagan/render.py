"""Headless CPU rendering of vertex sequences to images: camera, shading and two rasterisers.

Two rasterisers draw the same picture (same camera, same two-light shading formula):
- "egl": moderngl on a standalone EGL context (Mesa llvmpipe on CPU, a GPU driver where present);
  ~100 fps at 512x512 for a 5023-vertex FLAME mesh on CPU.
- "numpy": a pure-numpy z-buffer rasteriser (barycentric coverage, interpolated per-vertex normals),
  used when EGL is unavailable; ~10x slower, no extra dependency.
`backend="auto"` tries EGL and falls back to numpy with one log line.

A frame in which the mesh covers (almost) no pixels raises `VocaganError`: a failed render is an
error, never a silent black video. Encoding frames as mp4 with sound, the side-by-side comparison
and `vocagan render` on files live in `vocagan.video`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.frames import as_vertex_frames
from vocagan.utils import log

BACKGROUND = (0.13, 0.13, 0.15)  # RGB in [0, 1]
ALBEDO = (0.78, 0.78, 0.78)  # neutral light grey material
# Lights are fixed in view space (they move with the camera): (direction towards the light, intensity).
KEY_LIGHT = ((-0.45, 0.55, 1.0), 0.62)
FILL_LIGHT = ((0.65, 0.05, 0.75), 0.28)
AMBIENT = 0.22
SPECULAR, SHININESS = 0.10, 24.0
FOV_Y_DEG = 20.0
EGL_SAMPLES = 4  # multisampling: smooth silhouettes, ~half the EGL frame rate
MIN_COVERAGE = 0.001  # a frame whose mesh covers < 0.1 % of the pixels is a failed frame

_EGL_STATE: dict = {}  # lazily created EGL context (no import-time side effects)


# ----------------------------------------------------------------------------- camera and shading
@dataclass
class Camera:
    """A fixed perspective camera looking down -z of the mesh frame (FLAME faces +z, y up)."""

    view: np.ndarray  # (4, 4) world -> view
    proj: np.ndarray  # (4, 4) view -> clip (OpenGL convention)


def frame_camera(vertices: np.ndarray, aspect: float = 1.0, margin: float = 1.08) -> Camera:
    """Frame the bounding box of `vertices` (V, 3): computed once per video so the head does not jump."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    center = (lo + hi) / 2
    half_x, half_y, half_z = np.maximum((hi - lo) / 2, 1e-6)
    radius = float(np.linalg.norm([half_x, half_y, half_z]))
    half = np.radians(FOV_Y_DEG) / 2
    # Fit the x/y extent at the front of the box (+z faces the camera), with a small margin.
    dist = max(half_y, half_x / aspect) * margin / np.tan(half) + half_z
    view = np.eye(4)
    view[:3, 3] = -(center + np.array([0.0, 0.0, dist]))  # camera on +z, looking at the centre
    near, far = max(dist - 2 * radius, dist * 0.01), dist + 2 * radius
    f = 1.0 / np.tan(half)
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = f / aspect, f
    proj[2, 2], proj[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    proj[3, 2] = -1.0
    return Camera(view=view, proj=proj)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _half_vector() -> np.ndarray:
    """Blinn-Phong half vector of the key light and the viewer (+z), view space (3,)."""
    return _unit(_unit(KEY_LIGHT[0]) + np.array([0.0, 0.0, 1.0]))


def shade(normals: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Two-light Blinn-Phong in view space. normals (N, 3) unit, albedo (N, 3) -> rgb (N, 3) in [0, 1].

    Two-sided: a normal facing away from the viewer (+z) is flipped, so winding order does not matter.
    The GLSL fragment shader below implements the same formula.
    """
    n = normals * np.where(normals[:, 2:3] < 0, -1.0, 1.0)
    light = np.full(len(n), AMBIENT)
    spec = np.zeros(len(n))
    for direction, intensity in (KEY_LIGHT, FILL_LIGHT):
        d = _unit(direction)
        light += intensity * np.clip(n @ d, 0, None)
    spec += SPECULAR * np.clip(n @ _half_vector(), 0, None) ** SHININESS
    return np.clip(albedo * light[:, None] + spec[:, None], 0.0, 1.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, incidence=None) -> np.ndarray:
    """Area-weighted per-vertex normals (V, 3) of one frame (V, 3); `incidence` is the (V, F) sparse
    vertex-face matrix from `_incidence` (pass it to avoid rebuilding it every frame)."""
    if incidence is None:
        incidence = _incidence(faces, len(vertices))
    tri = vertices[faces]  # (F, 3 corners, 3)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (F, 3), length = 2 * area
    n = incidence @ face_n  # (V, 3)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(norm, 1e-12)).astype(np.float32)


def _incidence(faces: np.ndarray, n_vertices: int):
    from scipy.sparse import csr_matrix

    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_vertices, len(faces)))


# ----------------------------------------------------------------------------- validation
def check_mesh(
    vertices: np.ndarray, faces: np.ndarray, where: str | Path | None = None, faces_where: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate vertices (T, V, 3) (or (T, V*3)) and faces (F, 3); returns float32 / int32 arrays."""
    vertices = np.asarray(vertices)
    vertices = as_vertex_frames(vertices)  # converted layout: (T, V*3)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0 or vertices.shape[1] < 3:
        raise VocaganError(f"expected vertices of shape (T, V, 3), got {vertices.shape}", where)
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise VocaganError(f"expected triangle faces of shape (F, 3), got {faces.shape}", faces_where)
    if faces.min() < 0 or faces.max() >= vertices.shape[1]:
        raise VocaganError(
            f"faces index vertex {int(faces.max())} but the vertices have "
            f"{vertices.shape[1]} per frame (topology mismatch)",
            faces_where or where,
        )
    vertices = vertices.astype(np.float32, copy=False)
    for t0 in range(0, len(vertices), 1024):  # blockwise: a long memmap stays on disk
        bad = ~np.isfinite(vertices[t0 : t0 + 1024]).all(axis=(1, 2))
        if bad.any():
            raise VocaganError(f"vertices contain NaN/inf (first bad frame {t0 + int(np.argmax(bad))})", where)
    return vertices, faces.astype(np.int32)


def _as_colors(colors, n_frames: int, n_vertices: int) -> np.ndarray | None:
    """Per-vertex colours: None, (V, 3) or (T, V, 3), float in [0, 1] or uint8 -> float32."""
    if colors is None:
        return None
    colors = np.asarray(colors)
    if colors.dtype == np.uint8:
        colors = colors / 255.0
    if colors.shape not in ((n_vertices, 3), (n_frames, n_vertices, 3)):
        raise VocaganError(f"colors must be (V, 3) or (T, V, 3) with V={n_vertices}, T={n_frames}; got {colors.shape}")
    return colors.astype(np.float32)


# ----------------------------------------------------------------------------- rendering
def render_frames(
    vertices: np.ndarray,
    faces: np.ndarray,
    size: int | tuple[int, int] = 800,
    backend: str = "auto",
    colors: np.ndarray | None = None,
    camera: Camera | None = None,
) -> Iterator[np.ndarray]:
    """Render each frame of vertices (T, V, 3) with faces (F, 3) -> iterator of (H, W, 3) uint8.

    size: int (square) or (width, height). backend: "auto" | "egl" | "numpy". colors: per-vertex
    RGB (V, 3) or (T, V, 3) for heat maps (default: light grey). camera: default frames frame 0.
    Raises VocaganError for bad input, an unavailable forced backend, or a blank frame.
    """
    vertices, faces = check_mesh(vertices, faces)
    width, height = (int(size), int(size)) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))
    if width < 8 or height < 8:
        raise VocaganError(f"image size must be at least 8x8, got {width}x{height}")
    colors = _as_colors(colors, len(vertices), vertices.shape[1])
    camera = camera or frame_camera(vertices[0], width / height)
    if backend not in ("auto", "egl", "numpy"):
        raise VocaganError(f"unknown render backend '{backend}'; valid: auto, egl, numpy")
    if backend in ("auto", "egl"):
        ctx = _egl_context(required=backend == "egl")
        if ctx is not None:
            return _egl_frames(ctx, vertices, faces, width, height, colors, camera)
    return _numpy_frames(vertices, faces, width, height, colors, camera)


def _check_coverage(covered: int, width: int, height: int, index: int, backend: str) -> None:
    if covered < max(16, MIN_COVERAGE * width * height):
        raise VocaganError(
            f"render failed: frame {index} is blank ({backend}: the mesh covers {covered} of "
            f"{width * height} pixels; vertices off-camera or degenerate?)"
        )


def _numpy_frames(vertices, faces, width, height, colors, camera) -> Iterator[np.ndarray]:
    incidence = _incidence(faces, vertices.shape[1])
    albedo = np.asarray(ALBEDO, np.float32)
    for t in range(len(vertices)):
        col = albedo if colors is None else (colors if colors.ndim == 2 else colors[t])
        image, covered = rasterize(vertices[t], faces, width, height, camera, col, incidence)
        _check_coverage(covered, width, height, t, "numpy")
        yield image


def rasterize(
    verts: np.ndarray, faces: np.ndarray, width: int, height: int, camera: Camera, colors: np.ndarray, incidence=None
) -> tuple[np.ndarray, int]:
    """Pure-numpy z-buffer rasteriser of one frame (V, 3) -> ((H, W, 3) uint8, covered pixel count).

    All (triangle, pixel) candidates inside the triangles' bounding boxes are tested at once with
    edge functions; the nearest candidate per pixel wins (lexsort on pixel, depth).
    """
    normals = vertex_normals(verts, faces, incidence) @ camera.view[:3, :3].T  # (V, 3) view space
    hom = np.c_[verts.astype(np.float64), np.ones(len(verts))]  # (V, 4)
    clip = hom @ (camera.proj @ camera.view).T
    w = clip[:, 3]
    sx = (clip[:, 0] / w * 0.5 + 0.5) * width  # pixel x (column), pixel centres at +0.5
    sy = (0.5 - clip[:, 1] / w * 0.5) * height  # pixel y (row, from the top)
    depth = -(hom @ camera.view.T)[:, 2]  # distance along the view axis
    image = np.empty((height, width, 3), np.float32)
    image[:] = BACKGROUND
    x0, x1, x2 = sx[faces].T  # (F,) each
    y0, y1, y2 = sy[faces].T
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    xmin = np.clip(np.ceil(np.minimum(np.minimum(x0, x1), x2) - 0.5), 0, width).astype(np.int64)
    xmax = np.clip(np.floor(np.maximum(np.maximum(x0, x1), x2) - 0.5), -1, width - 1).astype(np.int64)
    ymin = np.clip(np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5), 0, height).astype(np.int64)
    ymax = np.clip(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5), -1, height - 1).astype(np.int64)
    nx, ny = xmax - xmin + 1, ymax - ymin + 1
    keep = (nx > 0) & (ny > 0) & (np.abs(area) > 1e-12) & (w[faces] > 0).all(axis=1)
    tri = np.nonzero(keep)[0]
    counts = (nx * ny)[tri]
    if counts.sum() == 0:
        return (image * 255 + 0.5).astype(np.uint8), 0
    # Enumerate every pixel of every kept triangle's bounding box.
    cand_tri = np.repeat(tri, counts)  # (N,)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    local = np.arange(counts.sum()) - start
    px = xmin[cand_tri] + local % nx[cand_tri]
    py = ymin[cand_tri] + local // nx[cand_tri]
    cx, cy = px + 0.5, py + 0.5
    ax, ay, bx, by, qx, qy = x0[cand_tri], y0[cand_tri], x1[cand_tri], y1[cand_tri], x2[cand_tri], y2[cand_tri]
    inv = 1.0 / area[cand_tri]
    b0 = ((bx - cx) * (qy - cy) - (qx - cx) * (by - cy)) * inv  # barycentric weights
    b1 = ((qx - cx) * (ay - cy) - (ax - cx) * (qy - cy)) * inv
    b2 = 1.0 - b0 - b1
    inside = (b0 >= 0) & (b1 >= 0) & (b2 >= 0)
    cand_tri, px, py, b0, b1, b2 = cand_tri[inside], px[inside], py[inside], b0[inside], b1[inside], b2[inside]
    if len(cand_tri) == 0:
        return (image * 255 + 0.5).astype(np.uint8), 0
    corners = faces[cand_tri]  # (N, 3)
    z = b0 * depth[corners[:, 0]] + b1 * depth[corners[:, 1]] + b2 * depth[corners[:, 2]]
    pix = py * width + px
    order = np.lexsort((z, pix))  # nearest first per pixel
    first = np.r_[True, pix[order][1:] != pix[order][:-1]]
    win = order[first]
    bary = np.stack([b0[win], b1[win], b2[win]], axis=1)[:, :, None]  # (P, 3, 1)
    c = corners[win]
    n = (normals[c] * bary).sum(axis=1)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    albedo = (colors[c] * bary).sum(axis=1) if colors.ndim == 2 else np.broadcast_to(colors, n.shape)
    image.reshape(-1, 3)[pix[win]] = shade(n, albedo)
    return (image * 255 + 0.5).astype(np.uint8), len(win)


# ----------------------------------------------------------------------------- EGL (moderngl)
_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
uniform mat3 normal_matrix;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_normal = normal_matrix * in_normal;
    v_color = in_color;
}
"""

_FRAGMENT_SHADER = """
#version 330
uniform vec3 key_dir; uniform float key_i;
uniform vec3 fill_dir; uniform float fill_i;
uniform vec3 half_vec; uniform float ambient; uniform float specular; uniform float shininess;
in vec3 v_normal;
in vec3 v_color;
out vec4 frag;
void main() {
    vec3 n = normalize(v_normal);
    if (n.z < 0.0) n = -n;                       // two-sided, as render.shade()
    float light = ambient + key_i * max(dot(n, key_dir), 0.0) + fill_i * max(dot(n, fill_dir), 0.0);
    float spec = specular * pow(max(dot(n, half_vec), 0.0), shininess);
    frag = vec4(clamp(v_color * light + spec, 0.0, 1.0), 1.0);
}
"""


def _egl_context(required: bool):
    """The process-wide EGL context, created on first use; None (after one log line) if unavailable."""
    if "ctx" not in _EGL_STATE:
        try:
            import moderngl

            # moderngl's stub types each **settings value as dict[str, Any]; backend is a str
            _EGL_STATE["ctx"] = moderngl.create_standalone_context(backend="egl", require=330)  # type: ignore[arg-type]
            _EGL_STATE["error"] = None
        except Exception as e:  # noqa: BLE001 - no libEGL, no display driver, ... -> numpy fallback
            _EGL_STATE["ctx"] = None
            _EGL_STATE["error"] = " ".join(str(e).split()) or type(e).__name__
            if not required:
                log(f"render: EGL unavailable ({_EGL_STATE['error']}); using the numpy rasteriser (slower)")
    if _EGL_STATE["ctx"] is None and required:
        raise VocaganError(f"EGL rendering unavailable ({_EGL_STATE['error']}); use backend='numpy' or 'auto'")
    return _EGL_STATE["ctx"]


def _egl_frames(ctx, vertices, faces, width, height, colors, camera) -> Iterator[np.ndarray]:
    # GL objects are created on the first next() and released when the iterator ends or is dropped.
    yield from _EglRenderer(ctx, faces, vertices.shape[1], width, height).frames(vertices, colors, camera)


class _EglRenderer:
    """GPU-side buffers for one topology and image size on the shared EGL context."""

    def __init__(self, ctx, faces: np.ndarray, n_vertices: int, width: int, height: int):
        self.ctx, self.width, self.height, self.faces = ctx, width, height, faces
        self.incidence = _incidence(faces, n_vertices)
        self.prog = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        for name, value in (
            ("key_dir", _unit(KEY_LIGHT[0])),
            ("fill_dir", _unit(FILL_LIGHT[0])),
            ("half_vec", _half_vector()),
        ):
            self.prog[name].value = tuple(float(x) for x in value)
        self.prog["key_i"].value, self.prog["fill_i"].value = KEY_LIGHT[1], FILL_LIGHT[1]
        self.prog["ambient"].value, self.prog["specular"].value = AMBIENT, SPECULAR
        self.prog["shininess"].value = SHININESS
        nbytes = n_vertices * 3 * 4
        self.pos = ctx.buffer(reserve=nbytes, dynamic=True)
        self.nrm = ctx.buffer(reserve=nbytes, dynamic=True)
        self.col = ctx.buffer(reserve=nbytes, dynamic=True)
        self.ibo = ctx.buffer(np.ascontiguousarray(faces, dtype="i4").tobytes())
        self.vao = ctx.vertex_array(
            self.prog,
            [(self.pos, "3f", "in_pos"), (self.nrm, "3f", "in_normal"), (self.col, "3f", "in_color")],
            index_buffer=self.ibo,
        )
        # 4x multisampling for smooth silhouettes, resolved into a plain framebuffer for reading.
        self.ms = ctx.simple_framebuffer((width, height), components=4, samples=EGL_SAMPLES)
        self.fbo = ctx.simple_framebuffer((width, height), components=4)
        self._resources = [self.prog, self.pos, self.nrm, self.col, self.ibo, self.vao, self.ms, self.fbo]

    def frames(self, vertices, colors, camera: Camera) -> Iterator[np.ndarray]:
        import moderngl

        try:
            mvp = (camera.proj @ camera.view).astype("f4")
            self.prog["mvp"].write(mvp.T.tobytes())  # GLSL is column-major
            self.prog["normal_matrix"].write(np.ascontiguousarray(camera.view[:3, :3].astype("f4").T).tobytes())
            if colors is None:
                self.col.write(np.tile(np.asarray(ALBEDO, "f4"), (vertices.shape[1], 1)).tobytes())
            elif colors.ndim == 2:
                self.col.write(np.ascontiguousarray(colors, "f4").tobytes())
            for t in range(len(vertices)):
                v = np.ascontiguousarray(vertices[t], dtype="f4")
                self.pos.write(v.tobytes())
                self.nrm.write(vertex_normals(v, self.faces, self.incidence).tobytes())
                if colors is not None and colors.ndim == 3:
                    self.col.write(np.ascontiguousarray(colors[t], "f4").tobytes())
                self.ms.use()
                self.ctx.enable(moderngl.DEPTH_TEST)
                self.ctx.disable(moderngl.CULL_FACE)
                self.ms.clear(*BACKGROUND, 0.0, depth=1.0)
                self.vao.render(moderngl.TRIANGLES)
                self.ctx.copy_framebuffer(self.fbo, self.ms)
                rgba = np.frombuffer(self.fbo.read(components=4, alignment=1), np.uint8)
                rgba = rgba.reshape(self.height, self.width, 4)[::-1]  # GL rows start at the bottom
                _check_coverage(int((rgba[:, :, 3] > 0).sum()), self.width, self.height, t, "egl")
                yield np.ascontiguousarray(rgba[:, :, :3])
        finally:
            for r in self._resources:
                r.release()


# ----------------------------------------------------------------------------- moved to vocagan.video
