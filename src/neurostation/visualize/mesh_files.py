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
    """One mesh from (vertices, faces) pieces, vertices at equal positions merged into one."""
    vertices = np.concatenate([v for v, _ in pieces])
    starts = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    faces = np.concatenate([f.astype(np.int64) + s for (_, f), s in zip(pieces, starts)])
    unique, index = np.unique(vertices, axis=0, return_inverse=True)
    return unique, index.reshape(-1)[faces]


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
