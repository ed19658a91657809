"""The one PLY/OBJ reader and writer (no plyfile/trimesh dependency).

`read_mesh` reads PLY (binary little/big endian and ASCII; extra vertex properties such as
normals and extra elements are skipped) and Wavefront OBJ. Polygons are split into triangles as
fans. `read_mesh_with_colors` also returns per-vertex colours (PLY red/green/blue, OBJ `v x y z r g
b`) when the file has them. `write_ply` writes binary little-endian PLY (the layout of VOCA's
FLAME_sample.ply: float x/y/z, `list uchar int vertex_indices`; uchar red/green/blue when colours
are given), `write_obj` plain OBJ (colours as `v x y z r g b`); both write atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocagan.errors import VocaganError
from vocagan.utils import atomic_path, existing_file

# PLY scalar type names (both spellings) -> numpy type codes without byte order.
_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY or OBJ mesh -> (vertices (V,3) float32, faces (F,3) int32; F may be 0)."""
    vertices, faces, _ = read_mesh_with_colors(path)
    return vertices, faces


def read_mesh_with_colors(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a PLY or OBJ mesh -> (vertices (V,3) float32, faces (F,3) int32, colours (V,3) float32 in
    [0, 1] or None when the file has no per-vertex colours)."""
    path = Path(path)
    existing_file(path, "mesh file")
    data = path.read_bytes()
    if data[:3] == b"ply":
        vertices, polygons, colors = _read_ply(data, path)
    elif path.suffix.lower() == ".obj":
        vertices, polygons, colors = _read_obj(data, path)
    else:
        raise VocaganError("not a PLY or OBJ mesh (PLY files start with 'ply'; OBJ files end in .obj)", path)
    if not np.isfinite(vertices).all():
        raise VocaganError(f"{int((~np.isfinite(vertices).all(axis=1)).sum())} vertices have NaN/inf coordinates", path)
    faces = _triangulate(polygons, len(vertices), path)
    if colors is not None and not np.isfinite(colors).all():
        colors = None  # unusable colours are not worth refusing a mesh for: render it uniform
    return vertices, faces, None if colors is None else np.clip(colors, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- PLY
def _parse_ply_header(data: bytes, path: Path):
    end = data.find(b"end_header")
    if end < 0:
        raise VocaganError("PLY header has no end_header line", path)
    body_start = data.index(b"\n", end) + 1 if b"\n" in data[end:] else len(data)
    fmt = None
    elements: list[dict] = []  # {"name", "count", "props": [(name, type) | (name, (count_type, item_type))]}
    for raw in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                elements.append({"name": words[1], "count": int(words[2]), "props": []})
            elif words[0] == "property" and words[1] == "list":
                elements[-1]["props"].append((words[4], (_PLY_TYPES[words[2]], _PLY_TYPES[words[3]])))
            elif words[0] == "property":
                elements[-1]["props"].append((words[2], _PLY_TYPES[words[1]]))
        except (IndexError, KeyError, ValueError):
            raise VocaganError(f"bad PLY header line '{raw.strip()}'", path) from None
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise VocaganError(f"unsupported PLY format '{fmt}'", path)
    return fmt, elements, body_start


def _read_ply(data: bytes, path: Path) -> tuple[np.ndarray, np.ndarray | list[np.ndarray], np.ndarray | None]:
    fmt, elements, start = _parse_ply_header(data, path)
    rows: dict[str, dict[str, np.ndarray | list]] = {}
    if fmt == "ascii":
        tokens = data[start:].split()
        pos = 0
        for el in elements:
            rows[el["name"]], pos = _ascii_element(el, tokens, pos, path)
    else:
        order = "<" if fmt == "binary_little_endian" else ">"
        pos = start
        for el in elements:
            rows[el["name"]], pos = _binary_element(el, data, pos, order, path)
    vert = rows.get("vertex")
    if vert is None or not all(k in vert for k in "xyz"):
        raise VocaganError("PLY has no vertex element with x, y, z", path)
    vertices = np.stack([np.asarray(vert[k], np.float32) for k in "xyz"], axis=1)
    face = rows.get("face", {})
    polygons = face.get("vertex_indices", face.get("vertex_index", []))
    colors = None
    names = next((c for c in (("red", "green", "blue"), ("r", "g", "b")) if all(k in vert for k in c)), None)
    if names is not None:
        kinds = {t for n, t in next(e for e in elements if e["name"] == "vertex")["props"] if n in names}
        colors = np.stack([np.asarray(vert[k], np.float64) for k in names], axis=1)
        if kinds <= {"u1"}:
            colors = colors / 255.0
    return vertices, polygons, colors


def _ascii_element(el: dict, tokens: list[bytes], pos: int, path: Path):
    n, props = el["count"], el["props"]
    try:
        if all(isinstance(t, str) for _, t in props):  # scalars only: one reshape
            k = len(props)
            table = np.array(tokens[pos : pos + n * k], dtype=np.float64).reshape(n, k)
            return {name: table[:, i] for i, (name, _) in enumerate(props)}, pos + n * k
        out: dict[str, list] = {name: [] for name, _ in props}
        for _ in range(n):
            for name, t in props:
                if isinstance(t, str):
                    out[name].append(float(tokens[pos]))
                    pos += 1
                else:
                    count = int(tokens[pos])
                    out[name].append(np.array(tokens[pos + 1 : pos + 1 + count], dtype=np.int64))
                    if len(out[name][-1]) != count:
                        raise IndexError
                    pos += 1 + count
        return out, pos
    except (ValueError, IndexError):
        raise VocaganError(f"truncated or malformed ASCII PLY element '{el['name']}'", path) from None


def _binary_element(el: dict, data: bytes, pos: int, order: str, path: Path):
    n, props = el["count"], el["props"]
    truncated = VocaganError(f"truncated PLY: element '{el['name']}' ({n} rows) runs past the end of the file", path)
    lists = [name for name, t in props if not isinstance(t, str)]
    if n > 0 and len(lists) <= 1:
        # Fast path: scalars only, or one list whose every row has the first row's count (triangles).
        fields: list[tuple] = []  # numpy structured dtype: (name, type) or (name, type, shape)
        offset = pos
        for name, t in props:
            if isinstance(t, str):
                fields.append((name, order + t))
                offset += np.dtype(t).itemsize
                continue
            if len(data) < offset + np.dtype(t[0]).itemsize:
                raise truncated
            count = int(np.frombuffer(data, order + t[0], 1, offset)[0])
            if not 0 <= count <= len(data):
                raise VocaganError(f"PLY element '{el['name']}': list length {count} is impossible", path)
            fields += [(name + "#n", order + t[0]), (name, order + t[1], (count,))]
            offset += np.dtype(t[0]).itemsize + count * np.dtype(t[1]).itemsize
        dtype = np.dtype(fields)
        if len(data) >= pos + n * dtype.itemsize:
            table = np.frombuffer(data, dtype, n, pos)
            if not lists or np.all(table[lists[0] + "#n"] == table[lists[0] + "#n"][0]):
                columns = {name: table[name] for name, _ in props}
                if lists:
                    columns[lists[0]] = table[lists[0]].astype(np.int64)  # (n, count)
                return columns, pos + n * dtype.itemsize
        elif not lists:
            raise truncated
    # Slow path: variable-length lists (mixed triangles/quads), row by row.
    out: dict[str, list] = {name: [] for name, _ in props}
    try:
        for _ in range(n):
            for name, t in props:
                if isinstance(t, str):
                    out[name].append(np.frombuffer(data, order + t, 1, pos)[0])
                    pos += np.dtype(t).itemsize
                else:
                    count = int(np.frombuffer(data, order + t[0], 1, pos)[0])
                    pos += np.dtype(t[0]).itemsize
                    out[name].append(np.frombuffer(data, order + t[1], count, pos).astype(np.int64))
                    pos += count * np.dtype(t[1]).itemsize
    except ValueError:
        raise truncated from None
    return out, pos


# ----------------------------------------------------------------------------- OBJ
def _read_obj(data: bytes, path: Path) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    vertices: list[list[float]] = []
    colors: list[list[float]] = []
    polygons: list[np.ndarray] = []
    for lineno, raw in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        words = raw.split()
        if not words:
            continue
        try:
            if words[0] == "v":
                vertices.append([float(w) for w in words[1:4]])
                if len(vertices[-1]) != 3:
                    raise ValueError
                if len(words) >= 7:  # the common `v x y z r g b` extension
                    colors.append([float(w) for w in words[4:7]])
            elif words[0] == "f":
                # "f 1/2/3 4//6 7": the vertex index is before the first slash; negatives count back.
                idx = [int(w.split("/")[0]) for w in words[1:]]
                polygons.append(np.array([i - 1 if i > 0 else len(vertices) + i for i in idx], np.int64))
        except ValueError:
            raise VocaganError(f"bad OBJ line {lineno}: '{raw.strip()}'", path) from None
    rgb = np.array(colors, np.float64) if colors and len(colors) == len(vertices) else None
    return np.array(vertices, np.float32).reshape(-1, 3), polygons, rgb


# ----------------------------------------------------------------------------- shared
def _triangulate(polygons, n_vertices: int, path: Path) -> np.ndarray:
    """Polygons (list of index arrays, or an (F,k) array) -> (F',3) int32 triangles by fans."""
    if len(polygons) == 0:
        return np.zeros((0, 3), np.int32)
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:  # (F, k): every face has k corners
        k = polygons.shape[1]
        if k < 3:
            raise VocaganError(f"faces have {k} vertices (need at least 3)", path)
        # fan (0, i, i+1) for i = 1 .. k-2, kept in face order: (F, k-2, 3) -> (F*(k-2), 3)
        faces = np.stack([polygons[:, [0, i, i + 1]] for i in range(1, k - 1)], axis=1).reshape(-1, 3)
    else:
        tris = []
        for poly in polygons:
            poly = np.asarray(poly, np.int64)
            if len(poly) < 3:
                raise VocaganError(f"a face has {len(poly)} vertices (need at least 3)", path)
            tris.append(np.stack([np.full(len(poly) - 2, poly[0]), poly[1:-1], poly[2:]], axis=1))
        faces = np.concatenate(tris)
    if faces.min() < 0 or faces.max() >= n_vertices:
        raise VocaganError(
            f"face index out of range (mesh has {n_vertices} vertices, faces use {faces.min()}..{faces.max()})", path
        )
    return faces.astype(np.int32)


def _check_colors(path: Path, colors, n_vertices: int) -> np.ndarray | None:
    """Per-vertex colours (V, 3) in [0, 1] (floats) or 0..255 (uint8) -> uint8, or None."""
    if colors is None:
        return None
    colors = np.asarray(colors)
    if colors.shape != (n_vertices, 3):
        raise VocaganError(f"colours must have shape ({n_vertices}, 3), got {colors.shape}", path)
    if colors.dtype == np.uint8:
        return colors
    return (np.clip(np.nan_to_num(colors.astype(np.float64)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_arrays(path: Path, vertices, faces):
    vertices = np.asarray(vertices, np.float32)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise VocaganError(f"vertices must have shape (V, 3), got {vertices.shape}", path)
    faces = np.zeros((0, 3), np.int32) if faces is None else np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise VocaganError(f"faces must have shape (F, 3), got {faces.shape}", path)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise VocaganError(f"face index out of range for {len(vertices)} vertices", path)
    return vertices, faces.astype(np.int32)


def write_ply(path: str | Path, vertices, faces=None, binary: bool = True, colors=None) -> None:
    """Write (V,3) vertices, optional (F,3) triangles and optional (V,3) per-vertex colours (floats
    in [0, 1] or uint8; stored as uchar red/green/blue) as PLY (binary little endian; ASCII if
    `binary=False`), atomically."""
    path = Path(path)
    vertices, faces = _check_arrays(path, vertices, faces)
    rgb = _check_colors(path, colors, len(vertices))
    fmt = "binary_little_endian" if binary else "ascii"
    header = (
        f"ply\nformat {fmt} 1.0\ncomment written by vocagan\nelement vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
    )
    if rgb is not None:
        header += "property uchar red\nproperty uchar green\nproperty uchar blue\n"
    if len(faces):
        header += f"element face {len(faces)}\nproperty list uchar int vertex_indices\n"
    header += "end_header\n"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.encode("ascii"))
        if binary and rgb is not None:
            table = np.empty(len(vertices), np.dtype([("xyz", "<f4", (3,)), ("rgb", "u1", (3,))]))
            table["xyz"], table["rgb"] = vertices, rgb
            f.write(table.tobytes())
        elif binary:
            f.write(vertices.astype("<f4").tobytes())
        if binary:
            if len(faces):
                table = np.empty(len(faces), np.dtype([("n", "u1"), ("v", "<i4", (3,))]))
                table["n"], table["v"] = 3, faces
                f.write(table.tobytes())
        else:
            # %.9g keeps every float32 bit, so ASCII round trips are exact
            colours = rgb.tolist() if rgb is not None else [None] * len(vertices)
            f.write(
                "".join(
                    f"{x:.9g} {y:.9g} {z:.9g}" + ("" if c is None else f" {c[0]:d} {c[1]:d} {c[2]:d}") + "\n"
                    for (x, y, z), c in zip(vertices.tolist(), colours, strict=True)
                ).encode()
            )
            f.write("".join(f"3 {a:d} {b:d} {c:d}\n" for a, b, c in faces.tolist()).encode())


def write_obj(path: str | Path, vertices, faces=None, colors=None) -> None:
    """Write (V,3) vertices, (F,3) triangles and optional (V,3) colours (as `v x y z r g b`, floats in
    [0, 1]) as a Wavefront OBJ (1-based indices), atomically."""
    path = Path(path)
    vertices, faces = _check_arrays(path, vertices, faces)
    rgb = _check_colors(path, colors, len(vertices))
    colours = (rgb / 255.0).tolist() if rgb is not None else [None] * len(vertices)
    lines = ["# written by vocagan\n"]
    lines += [
        f"v {x:.9g} {y:.9g} {z:.9g}" + ("" if c is None else f" {c[0]:.4g} {c[1]:.4g} {c[2]:.4g}") + "\n"
        for (x, y, z), c in zip(vertices.tolist(), colours, strict=True)
    ]
    lines += [f"f {a:d} {b:d} {c:d}\n" for a, b, c in (faces + 1).tolist()]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def write_mesh_sequence(folder: str | Path, vertices, faces, colors=None, kind: str = "ply") -> Path:
    """One mesh file per frame of vertices (T, V, 3): folder/frame_000000.ply (or .obj), same faces and
    colours in each. Returns the folder."""
    from vocagan.utils import progress

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write = write_ply if kind == "ply" else write_obj
    for t in progress(range(len(vertices)), desc=kind, unit="frame"):
        write(folder / f"frame_{t:06d}.{kind}", vertices[t], faces, colors=colors)
    return folder
