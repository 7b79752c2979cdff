"""Latent vectors: slerp (scalar and array t, degenerate pairs), bilinear slerp, seeds."""
import numpy as np
import pytest

import gansynth_live as gl
from gansynth_live.latent import bilinear_slerp, seeded_z, slerp

D = 16


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(D), rng.standard_normal(D)


def _angle(a, b):
    return np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))


def test_endpoints_and_shape():
    z0, z1 = _pair()
    np.testing.assert_array_equal(slerp(z0, z1, 0.0), z0)
    np.testing.assert_array_equal(slerp(z0, z1, 1.0), z1)
    out = slerp(z0, z1, np.linspace(0, 1, 7))
    assert out.shape == (7, D)
    np.testing.assert_array_equal(out[0], z0)
    np.testing.assert_array_equal(out[-1], z1)


def test_constant_angular_speed_and_unit_norm():
    z0, z1 = _pair(1)
    u0, u1 = z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1)
    t = np.linspace(0, 1, 11)
    path = slerp(u0, u1, t)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1.0, atol=1e-12)
    omega = _angle(u0, u1)
    np.testing.assert_allclose([_angle(u0, p) for p in path], t * omega, atol=1e-9)


def test_matches_magentas_formula():
    z0, z1 = _pair(2)
    omega = np.arccos(np.dot(z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1)))
    t = 0.3
    expected = np.sin((1 - t) * omega) / np.sin(omega) * z0 + np.sin(t * omega) / np.sin(omega) * z1
    np.testing.assert_allclose(slerp(z0, z1, t), expected, rtol=1e-12)


def test_parallel_vectors_interpolate_linearly():
    z0 = _pair(3)[0]
    out = slerp(z0, 2 * z0, np.array([0.0, 0.5, 1.0]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[1], 1.5 * z0)
    np.testing.assert_allclose(slerp(z0, z0, 0.4), z0)


def test_antiparallel_vectors_turn_without_passing_through_zero():
    z0 = _pair(4)[0]
    out = slerp(z0, -z0, np.linspace(0, 1, 9))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(z0), rtol=1e-12)
    assert abs(out[4] @ z0) < 1e-9  # halfway: perpendicular
    np.testing.assert_allclose(out[0], z0, atol=1e-12)
    np.testing.assert_allclose(out[-1], -z0, atol=1e-12)


def test_zero_vector_falls_back_to_lerp():
    z0 = _pair(5)[0]
    np.testing.assert_allclose(slerp(np.zeros(D), z0, 0.25), 0.25 * z0)


def test_rowwise_broadcasting():
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((5, D)), rng.standard_normal((5, D))
    t = np.linspace(0, 1, 5)
    out = slerp(a, b, t)
    assert out.shape == (5, D)
    for i in range(5):
        np.testing.assert_allclose(out[i], slerp(a[i], b[i], t[i]), rtol=1e-12)


def test_mismatched_sizes_raise():
    with pytest.raises(ValueError, match="sizes differ"):
        slerp(np.ones(3), np.ones(4), 0.5)


def test_bilinear_slerp_corners_edges_and_centre():
    anchors = np.random.default_rng(7).standard_normal((4, D))
    for (x, y), k in {(0, 0): 0, (1, 0): 1, (0, 1): 2, (1, 1): 3}.items():
        np.testing.assert_allclose(bilinear_slerp(anchors, x, y), anchors[k], atol=1e-12)
    np.testing.assert_allclose(bilinear_slerp(anchors, 0.3, 0.0),
                               slerp(anchors[0], anchors[1], 0.3), atol=1e-12)
    np.testing.assert_allclose(bilinear_slerp(anchors, 0.0, 0.6),
                               slerp(anchors[0], anchors[2], 0.6), atol=1e-12)
    centre = slerp(slerp(anchors[0], anchors[1], 0.5), slerp(anchors[2], anchors[3], 0.5), 0.5)
    np.testing.assert_allclose(bilinear_slerp(anchors, 0.5, 0.5), centre)
    grid = bilinear_slerp(anchors, np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0]))
    assert grid.shape == (3, D)
    np.testing.assert_allclose(grid[2], anchors[3], atol=1e-12)
    with pytest.raises(ValueError, match="4, latent_size"):
        bilinear_slerp(anchors[:3], 0.5, 0.5)


def test_seeded_z_is_models_random_z():
    model = gl.Model(gl.preset("tiny"), [60])
    np.testing.assert_array_equal(seeded_z(42, model.latent_size, 3), model.random_z(3, 42))
    np.testing.assert_array_equal(seeded_z(42, model.latent_size), model.random_z(1, 42)[0])
    assert seeded_z(1, D).dtype == np.float32
