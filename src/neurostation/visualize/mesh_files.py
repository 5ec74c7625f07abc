"""Mesh files: Neuroglancer's legacy precomputed mesh fragments (encode and decode), welding
fragments into one mesh, and OBJ / PLY / STL writers for exported objects."""

import struct

import numpy as np

EXPORT_FORMATS = ("obj", "ply", "stl")


def encode_fragment(vertices, faces):
    """A legacy fragment: uint32 vertex count, float32 x y z per vertex, uint32 triangle indices
    (little-endian)."""
    return (struct.pack("<I", len(vertices)) + np.asarray(vertices, "<f4").tobytes()
            + np.asarray(faces, "<u4").tobytes())


def decode_fragment(data):
    """(vertices (n, 3) float32, faces (m, 3) uint32) of a legacy fragment."""
    count = struct.unpack_from("<I", data)[0]
    vertices = np.frombuffer(data, "<f4", 3 * count, 4).reshape(-1, 3)
    faces = np.frombuffer(data, "<u4", offset=4 + 12 * count).reshape(-1, 3)
    return vertices, faces


def weld(pieces):
    """One mesh from (vertices, faces) pieces of box meshes, vertices at equal positions merged
    into one (in first-seen order). A piece's own vertices are distinct, and pieces of
    neighbouring boxes meet on box planes, where each has its extreme vertices: only vertices on
    the faces of their piece's bounding box are compared (a small share of them)."""
    vertices = np.concatenate([v for v, _ in pieces])
    starts = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    faces = np.concatenate([f.astype(np.int64) + s for (_, f), s in zip(pieces, starts)])
    rims = np.flatnonzero(np.concatenate([((v == v.min(axis=0)) | (v == v.max(axis=0))).any(axis=1)
                                          for v, _ in pieces]))
    keys = np.ascontiguousarray(vertices[rims]).view(np.dtype((np.void, vertices.itemsize * 3)))
    _, first, same = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    index = np.arange(len(vertices))
    index[rims] = rims[first][same.reshape(-1)]  # each rim vertex -> its first copy
    kept = index == np.arange(len(vertices))
    number = np.cumsum(kept) - 1
    return vertices[kept], number[index][faces]


def write_mesh(path, vertices, faces, kind):
    """Write a mesh as `kind`: obj (text), ply (ASCII) or stl (binary)."""
    if kind == "stl":
        _write_stl(path, np.asarray(vertices, np.float32), faces)
        return
    with open(path, "w", encoding="ascii") as out:
        if kind == "ply":
            out.write(f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
                      f"property float y\nproperty float z\nelement face {len(faces)}\n"
                      "property list uchar int vertex_indices\nend_header\n")
            np.savetxt(out, vertices, fmt="%.9g")
            np.savetxt(out, np.column_stack([np.full(len(faces), 3), faces]), fmt="%d")
        else:
            np.savetxt(out, vertices, fmt="v %.9g %.9g %.9g")
            np.savetxt(out, np.asarray(faces) + 1, fmt="f %d %d %d")


def _write_stl(path, vertices, faces):
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
    records = np.zeros(len(faces), [("normal", "<f4", 3), ("corners", "<f4", (3, 3)),
                                    ("attributes", "<u2")])
    records["normal"], records["corners"] = normals, corners
    with open(path, "wb") as out:
        out.write(b"neurostation mesh".ljust(80, b" ") + struct.pack("<I", len(faces)))
        out.write(records.tobytes())
