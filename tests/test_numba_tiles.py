"""The register-tiled matrix product of the numba kernels (``npnet.kernels.dense.matmul_tiled``).

It replaces BLAS for the large products of training, so it must be right for every shape the
kernels give it: rows not a multiple of the tile's, transposed views (the weight gradient),
inner dimensions split into blocks, float32 and float64.
"""

import numpy as np
import pytest

pytest.importorskip("numba")

from npnet.kernels import dense as K  # noqa: E402


def _operands(m, p, q, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, p)).astype(dtype), rng.standard_normal((p, q)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [1, 3, 4, 7, 32, 33])
def test_tiled_product_equals_the_exact_product(dtype, m):
    q = 2 * int(K.TILE_VECTORS * K.VECTOR_BYTES // np.dtype(dtype).itemsize)
    a, b = _operands(m, 300, q, dtype)
    out = np.full((m, q), np.nan, dtype=dtype)
    K.matmul_tiled(a, b, out, K.DEPTH_BLOCK)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # one rounding per multiply-add over 300 terms of size ~1: float32 lands within ~1e-4
    tolerance = 2e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, exact, rtol=0, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_transposed_operand_gives_the_weight_gradient(dtype):
    q = int(K.TILE_VECTORS * K.VECTOR_BYTES // np.dtype(dtype).itemsize)
    x, dz = _operands(37, 29, q, dtype)[0], _operands(37, q, 1, dtype)[0]
    out = np.empty((29, q), dtype=dtype)
    K.matmul_tiled(x.T, dz, out, K.DEPTH_BLOCK)
    np.testing.assert_allclose(out, x.T.astype(np.float64) @ dz, rtol=0,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [1, 5, 64, 128])
def test_blocks_of_the_inner_dimension_change_no_bit(dtype, block):
    """Resuming each tile's sums from ``out`` adds the same terms in the same order as one
    pass, so the result is identical whatever the block size."""
    q = int(K.TILE_VECTORS * K.VECTOR_BYTES // np.dtype(dtype).itemsize)
    a, b = _operands(10, 300, q, dtype, seed=1)
    one_pass, blocked = np.empty((10, q), dtype), np.empty((10, q), dtype)
    K.matmul_tiled(a, b, one_pass, 300)
    K.matmul_tiled(a, b, blocked, block)
    np.testing.assert_array_equal(blocked, one_pass)


def test_each_sum_runs_over_k_in_order():
    """Sums whose order matters: 1e8 + 1 - 1e8 is 0 in float32 taken left to right, not 1."""
    q = int(K.TILE_VECTORS * K.VECTOR_BYTES // 4)
    a = np.ones((4, 3), np.float32)
    b = np.zeros((3, q), np.float32)
    b[:, 0] = [1e8, 1.0, -1e8]
    out = np.empty((4, q), np.float32)
    K.matmul_tiled(a, b, out, K.DEPTH_BLOCK)
    assert np.all(out[:, 0] == 0.0) and np.all(out[:, 1:] == 0.0)


def test_units_that_are_not_whole_tiles_go_elsewhere():
    width = int(K.TILE_VECTORS * K.VECTOR_BYTES // 4)
    assert K.tiles_fit(np.empty((2, 2 * width), np.float32))
    assert not K.tiles_fit(np.empty((2, 10), np.float32))
    assert K.tile_columns(np.empty((1, width), np.float64)) == width // 2
