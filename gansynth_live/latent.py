"""Latent vectors: seeded sampling and spherical interpolation (slerp) between timbres.

GANSynth's latent vectors are drawn from N(0, I); points "between" two timbres are
taken on the great circle through them (slerp), which keeps the interpolated vectors
at the typical norm of the prior instead of shrinking them towards 0 as a straight
line (lerp) would.
"""
from __future__ import annotations

import numpy as np

# Below this sine of the angle between the directions, the great circle is ill-defined:
# parallel vectors fall back to lerp (the exact limit of the slerp formula), antiparallel
# ones rotate through a fixed perpendicular direction.
_EPS = 1e-7


def seeded_z(seed: int, latent_size: int, n: int | None = None) -> np.ndarray:
    """Latent vectors drawn from N(0, 1) with numpy's default_rng(`seed`), float32.

    Returns shape (latent_size,) when `n` is None, else (n, latent_size). The same
    numbers as `Model.random_z(n, seed)`, so a seed names the same timbre everywhere.
    """
    rows = 1 if n is None else int(n)
    z = np.random.default_rng(seed).standard_normal((rows, int(latent_size))).astype(np.float32)
    return z[0] if n is None else z


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each unit row of `u` (..., D), chosen deterministically."""
    basis = np.zeros_like(u)
    np.put_along_axis(basis, np.argmin(np.abs(u), axis=-1)[..., None], 1.0, axis=-1)
    w = basis - np.sum(basis * u, axis=-1, keepdims=True) * u
    return w / np.linalg.norm(w, axis=-1, keepdims=True)


def slerp(z0, z1, t) -> np.ndarray:
    """Spherical linear interpolation from `z0` (t = 0) to `z1` (t = 1).

    Args:
        z0, z1: arrays (..., D) that broadcast together (one vector each, or rows).
        t: scalar or array; broadcast against the leading dimensions, so one pair of
            vectors with t of shape (T,) gives (T, D), and rows (N, D) with t (N,) give (N, D).

    Returns:
        float64 array of the broadcast shape (..., D). Uses Magenta's formula
        sin((1-t)w)/sin(w) z0 + sin(tw)/sin(w) z1, w the angle between the directions
        (norms are blended along with the directions); parallel vectors, or a zero
        vector, give the linear interpolation (the formula's limit); antiparallel vectors
        turn through a fixed perpendicular direction with the norm interpolated
        linearly, so the result never passes through the origin. t outside 0..1
        extrapolates along the same circle.
    """
    z0 = np.asarray(z0, np.float64)
    z1 = np.asarray(z1, np.float64)
    if z0.ndim == 0 or z1.ndim == 0:
        raise ValueError("slerp needs vectors, got a scalar")
    if z0.shape[-1] != z1.shape[-1]:
        raise ValueError(f"slerp: vector sizes differ: {z0.shape[-1]} and {z1.shape[-1]}")
    t = np.asarray(t, np.float64)[..., np.newaxis]
    z0, z1, t = np.broadcast_arrays(z0, z1, t)
    t = t[..., :1]
    n0 = np.linalg.norm(z0, axis=-1, keepdims=True)
    n1 = np.linalg.norm(z1, axis=-1, keepdims=True)
    degenerate = (n0 == 0) | (n1 == 0)
    safe0 = np.where(degenerate, 1.0, n0)
    safe1 = np.where(degenerate, 1.0, n1)
    u0, u1 = z0 / safe0, z1 / safe1
    cos = np.clip(np.sum(u0 * u1, axis=-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    regular = (sin >= _EPS) & ~degenerate
    safe_sin = np.where(regular, sin, 1.0)
    out = (np.sin((1.0 - t) * omega) / safe_sin) * z0 + (np.sin(t * omega) / safe_sin) * z1
    linear = (1.0 - t) * z0 + t * z1
    antiparallel = ~regular & ~degenerate & (cos < 0)
    out = np.where(regular, out, linear)
    if np.any(antiparallel):
        w = _perpendicular(u0)
        direction = np.cos(np.pi * t) * u0 + np.sin(np.pi * t) * w
        out = np.where(antiparallel, direction * ((1.0 - t) * n0 + t * n1), out)
    return out


def bilinear_slerp(anchors, x, y) -> np.ndarray:
    """A point in the square spanned by four anchor vectors (the live server's timbre pad).

    Args:
        anchors: (4, D) corner vectors in the order
            0: (x=0, y=0)   1: (x=1, y=0)   2: (x=0, y=1)   3: (x=1, y=1)
            (index = x_corner + 2 * y_corner; on a pad with y up: 0 bottom-left,
            1 bottom-right, 2 top-left, 3 top-right).
        x, y: position in 0..1 each; scalars or arrays that broadcast together.

    Returns:
        float64 (..., D): slerp along x on the bottom edge (0 -> 1) and on the top edge
        (2 -> 3), then slerp along y between those two points. The corners come back
        exactly at (0,0), (1,0), (0,1), (1,1).
    """
    anchors = np.asarray(anchors, np.float64)
    if anchors.ndim != 2 or anchors.shape[0] != 4:
        raise ValueError(f"anchors must have shape (4, latent_size), got {anchors.shape}")
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    bottom = slerp(anchors[0], anchors[1], x)
    top = slerp(anchors[2], anchors[3], x)
    return slerp(bottom, top, y)


__all__ = ["bilinear_slerp", "seeded_z", "slerp"]
