"""Low-budget kernels: exact δ-ball graphs stored compactly (ProbCover) and cached
nearest-neighbour lists (TypiClust). Imports torch: strategies import it inside ``_select``.

δ-ball graphs: float32 matrix products as a filter, float64 rechecks.

ProbCover needs, for points grouped by k-means cluster, (1) each point's squared distance to the
nearest point of another group (the purity radius: over all points, or over a sample of ball
centres) and (2) the δ-ball graph ``i ~ j iff ||x_i - x_j||² < δ²``. They run as float32 GEMMs in
row blocks, with a rigorous bound on the float32 error so that only the pairs within that bound of
a threshold are recomputed exactly. "Exact" means the float64 sum of squared differences
``Σ (x_i - x_j)²`` of the input rows, which is symmetric bit for bit, so every pair is decided the
same way whichever block, pass or orientation computes it (docs/algorithms.md §1.8).

What keeps the graph cheap when groups are given:

* an edge between groups needs ``||x - y|| < δ <= ...``: both endpoints are then *impure* (their
  nearest other-group point is closer than δ), so cross-group pairs are only scanned among the
  points whose lower bound on that distance is below δ² (or not at all, the within-cluster
  approximation of ProbCover);
* within a group each pair is computed once (upper-triangle blocks), and the edges are kept as
  one bit matrix per group (``n_q² / 8`` bytes: 3 MB for a 5,000-point cluster; groups above
  ``BITMAP_ROWS`` points keep neighbour lists), so greedy coverage updates its counts from the
  stored graph without recomputing distances. With C clusters the bit matrices hold about
  ``N² / (8C)`` bytes; no N × N matrix is formed unless one group holds every point (a fixed
  ``delta``), and then only as bits up to ``BITMAP_ROWS`` points.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _kernels as K

# float32 entries per distance block (16 MiB)
BLOCK32 = 1 << 22
# rows and columns of the square distance tiles of the graph and the sampled purity radius: float32
# products run markedly faster on square 2048 × 2048 outputs than on wide row blocks; a multiple
# of 8, so that tiles of a bit matrix start on whole bytes
TILE = 2048
# exact rechecks are done this many pairs at a time (bounds the float64 difference buffer)
RECHECK_PAIRS = 4096

# groups up to this many points keep their δ-ball edges as a bit matrix (at most 32 MiB)
BITMAP_ROWS = 1 << 14

# neighbours kept per member beyond TypiClust's `knn`, so most lists outlive a few picks
CACHE_SLACK = 16

Index = slice | torch.Tensor  # sorted positions: a contiguous range or an index tensor


class BallSpace:
    """Points ordered by group, with what the float32 filter and the exact recheck need.

    Parameters
    ----------
    x : (N, d) array
        The points (any float dtype; rechecks use these values in float64).
    groups : (N,) int array or None
        Group of every point (None: one group).
    device : torch.device
        Where the float32 blocks are computed.
    """

    def __init__(self, x: np.ndarray, groups: np.ndarray | None, device: torch.device) -> None:
        n, d = x.shape
        groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
        self.order = np.argsort(groups, kind="stable")  # sorted position -> original index
        self.x = x
        g = groups[self.order]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if n else np.zeros(0, np.int64)
        self.bounds = np.r_[starts, n].astype(np.int64)  # group q holds [bounds[q], bounds[q+1])
        self.gid = np.repeat(np.arange(len(starts)), np.diff(self.bounds))  # group number, sorted
        self.gid_t = torch.as_tensor(self.gid, device=device)
        self.xs = K.as_tensor(x[self.order], device, torch.float32)
        self.ns = sqnorms64(x)[self.order]  # exact ||x||² in float64, sorted order
        self.ns32 = torch.as_tensor(self.ns, device=device).to(torch.float32)
        # |float32 GEMM distance - exact| <= tau·(||x_i||² + ||x_j||²): inner-product error
        # (d·u), input rounding and the float32 combination, with a margin of 4.
        self.tau = (d + 16) * 2.0**-23
        self.n = n
        self.device = device

    # ---------------------------------------------------------------- distances

    def block(self, rows: Index, cols: Index) -> torch.Tensor:
        """float32 ``||x_i||² + ||x_j||² - 2<x_i, x_j>`` for sorted positions ``rows`` × ``cols``."""
        d = K.matmul(self.xs[rows], self.xs[cols].T)
        return d.mul_(-2.0).add_(self.ns32[rows, None]).add_(self.ns32[None, cols])

    def exact(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Exact float64 squared distances of the sorted-position pairs ``(i, j)``."""
        out = np.empty(len(i), dtype=np.float64)
        oi, oj = self.order[i], self.order[j]
        for s in range(0, len(i), RECHECK_PAIRS):
            diff = self.x[oi[s : s + RECHECK_PAIRS]].astype(np.float64)
            diff -= self.x[oj[s : s + RECHECK_PAIRS]]
            out[s : s + RECHECK_PAIRS] = np.einsum("ij,ij->i", diff, diff)
        return out

    def tol(self, rows: Index, cols: Index) -> float:
        """A bound on the float32 error of every entry of ``block(rows, cols)``."""
        return self.tau * (float(self.ns32[rows].max()) + float(self.ns32[cols].max())) * (1 + 1e-6)

    def edges(self, rows: Index, cols: Index, radius_sq: float) -> torch.Tensor:
        """Bool block ``exact d(i, j) < radius_sq`` (float32 filter, exact recheck near it)."""
        d = self.block(rows, cols)
        tol = self.tol(rows, cols)
        # float32 thresholds rounded outwards, compared with d directly: every entry is certainly
        # in (d < low), certainly out (d > high) or rechecked (comparing d - radius_sq with tol
        # in float32 left entries in none of the three after rounding)
        low, high = _f32_down(radius_sq - tol), _f32_up(radius_sq + tol)
        out = d < low
        band = d <= high
        band ^= out  # low <= d <= high (d < low implies d <= high)
        near = torch.nonzero(band)
        if near.shape[0]:
            i = _positions(rows, K.to_numpy(near[:, 0]))
            j = _positions(cols, K.to_numpy(near[:, 1]))
            ok = self.exact(i, j) < radius_sq
            out[near[:, 0], near[:, 1]] = torch.as_tensor(ok, device=out.device)
        return out

    # ---------------------------------------------------------------- purity radius

    def other_group_sqdist_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) bounds, in sorted order, on each point's exact squared distance to the nearest
        point of another group (``inf`` with a single group). One float32 pass over the pairs of
        distinct groups, each pair computed once (row and column minima of every block)."""
        best = torch.full((self.n,), torch.inf, dtype=torch.float32, device=self.device)
        for q in range(len(self.bounds) - 1):
            end = int(self.bounds[q + 1])
            cols = slice(end, self.n)  # every later group: contiguous in sorted order
            if end >= self.n:
                break
            step = K.rows_per_block(self.n - end, BLOCK32)
            for r0 in range(int(self.bounds[q]), end, step):
                rows = slice(r0, min(r0 + step, end))
                d = self.block(rows, cols)
                best[rows] = torch.minimum(best[rows], d.min(1).values)
                best[cols] = torch.minimum(best[cols], d.min(0).values)
        approx = K.to_numpy(best).astype(np.float64)
        slack = self.tau * (self.ns + self.ns.max(initial=0.0)) * (1 + 1e-6)
        return np.maximum(approx - slack, 0.0), approx + slack

    def other_group_sqdist_exact(self, pos: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Exact nearest-other-group squared distance of the sorted positions ``pos`` (``hi``: an
        upper bound for each, from :meth:`other_group_sqdist_bounds`)."""
        out = np.full(len(pos), np.inf)
        step = K.rows_per_block(self.n, BLOCK32)
        everything = slice(0, self.n)
        for s in range(0, len(pos), step):
            p = pos[s : s + step]
            rows = torch.as_tensor(p, device=self.device)
            d = self.block(rows, everything)
            d.masked_fill_(self.gid_t[rows, None] == self.gid_t[None, :], torch.inf)
            lim = torch.as_tensor(hi[s : s + step], device=self.device) + self.tol(rows, everything)
            cand = torch.nonzero(d <= lim.mul_(1 + 2.0**-20).to(torch.float32)[:, None])
            r, c = K.to_numpy(cand[:, 0]), K.to_numpy(cand[:, 1])
            np.minimum.at(out, s + r, self.exact(p[r], c))
        return out

    def other_group_sqdist_rows(self, pos: np.ndarray) -> np.ndarray:
        """Exact nearest-other-group squared distance of the sorted positions ``pos`` (``inf``
        where a point has no other group): one float32 pass over their rows in square tiles,
        then exact rechecks of every entry within the error bound of its row's minimum."""
        out = np.full(len(pos), np.inf)
        if len(self.bounds) <= 2:
            return out  # one group: no other-group point
        everything = slice(0, self.n)
        for s in range(0, len(pos), TILE):
            p = pos[s : s + TILE]
            rows = torch.as_tensor(p, device=self.device)
            slack = 2.0 * self.tol(
                rows, everything
            )  # exact_j >= d_j - tol, min exact <= min d + tol
            best = torch.full((len(p),), torch.inf, dtype=torch.float32, device=self.device)
            found: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
            for c0 in range(0, self.n, TILE):
                cols = slice(c0, min(c0 + TILE, self.n))
                d = self.block(rows, cols)
                d.masked_fill_(self.gid_t[rows, None] == self.gid_t[None, cols], torch.inf)
                best = torch.minimum(best, d.min(1).values)
                lim = torch.where(torch.isfinite(best), best + slack, -1.0)  # no same-group entry
                r, c = torch.nonzero(d <= lim[:, None], as_tuple=True)
                found.append((r, c + c0, d[r, c]))  # a superset: best only decreases
            r, c, v = (torch.cat(t) for t in zip(*found, strict=True))
            keep = v <= best[r] + slack
            r, c = K.to_numpy(r[keep]), K.to_numpy(c[keep])
            np.minimum.at(out, s + r, self.exact(p[r], c))
        return out


class BallGraph:
    """The δ-ball graph ``i ~ j iff exact ||x_i - x_j||² < radius_sq`` of a :class:`BallSpace`,
    in its sorted positions (symmetric, self-loops included).

    Within-group edges are stored per group as a bit matrix (``n_q² / 8`` bytes) when the group
    has at most ``BITMAP_ROWS`` points, else as neighbour lists (4 bytes per edge); cross-group
    edges, decided only among the points of ``open_set`` (sorted bool mask of those that may have
    neighbours in other groups; None: none), as neighbour lists. Each within-group pair of a bit
    matrix is computed once (upper-triangle blocks, mirrored), so building costs half the
    group's pairs; nothing of size N × N is formed unless a single group holds every point.

    Raises
    ------
    ValueError
        When the graph has more than ``max_edges`` edges (counted as it is built).
    """

    def __init__(
        self,
        space: BallSpace,
        radius_sq: float,
        open_set: np.ndarray | None,
        max_edges: int,
    ) -> None:
        self.n = space.n
        self.bounds = space.bounds
        self.gid = space.gid
        self.degree = np.zeros(self.n, dtype=np.int64)
        self.bits: dict[int, np.ndarray] = {}
        self.lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for q in range(len(self.bounds) - 1):
            lo, hi = int(self.bounds[q]), int(self.bounds[q + 1])
            if hi - lo <= BITMAP_ROWS:
                self.bits[q] = self._bit_matrix(space, lo, hi, radius_sq)
                self.degree[lo:hi] = np.bitwise_count(self.bits[q]).sum(1)
            else:
                self.lists[q] = self._lists(space, lo, hi, radius_sq, max_edges)
                self.degree[lo:hi] = np.diff(self.lists[q][0])
            _check_edges(int(self.degree.sum()), max_edges)
        self.cross = None
        if open_set is not None and open_set.any():
            self.cross = self._cross(space, radius_sq, open_set, max_edges)
            self.degree += np.diff(self.cross[0])
            _check_edges(int(self.degree.sum()), max_edges)

    @staticmethod
    def _bit_matrix(space: BallSpace, lo: int, hi: int, radius_sq: float) -> np.ndarray:
        """Packed rows (bit j of row i: ``lo + i ~ lo + j``) of one group, from tiles of
        ``TILE // 2`` rows by ``TILE`` columns on and right of the diagonal: each tile fills its
        rows and, transposed, the same pairs in the rows of its columns beyond the row tile. Only
        the half-height diagonal squares are computed in both orientations. Tiles start at
        multiples of 8 so that both writes land on whole bytes."""
        m = hi - lo
        packed = np.zeros((m, (m + 7) // 8), dtype=np.uint8)
        height = max(8, TILE // 2)
        for a in range(0, m, height):
            b = min(a + height, m)
            for c0 in range(a, m, TILE):
                c1 = min(c0 + TILE, m)
                e = K.to_numpy(
                    space.edges(slice(lo + a, lo + b), slice(lo + c0, lo + c1), radius_sq)
                )
                packed[a:b, c0 // 8 : (c1 + 7) // 8] |= np.packbits(e, axis=1)
                m0 = max(c0, b)  # columns beyond the row tile: mirror into their rows
                if m0 < c1:
                    packed[m0:c1, a // 8 : (b + 7) // 8] |= np.packbits(e[:, m0 - c0 :].T, axis=1)
        return packed

    @staticmethod
    def _lists(
        space: BallSpace, lo: int, hi: int, radius_sq: float, max_edges: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour lists (local CSR) of one large group, row block by row block."""
        m = hi - lo
        counts = np.zeros(m, dtype=np.int64)
        cols: list[np.ndarray] = []
        step = K.rows_per_block(m, BLOCK32)
        total = 0
        for a in range(0, m, step):
            b = min(a + step, m)
            nz = K.to_numpy(
                torch.nonzero(space.edges(slice(lo + a, lo + b), slice(lo, hi), radius_sq))
            )
            counts[a:b] = np.bincount(nz[:, 0], minlength=b - a)
            cols.append(nz[:, 1].astype(np.int32))  # row-major: sorted by row, then column
            total += len(nz)
            _check_edges(total, max_edges)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, np.concatenate(cols)

    @staticmethod
    def _cross(
        space: BallSpace, radius_sq: float, open_set: np.ndarray, max_edges: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Cross-group neighbour lists (CSR over all sorted positions), each pair decided once."""
        src: list[np.ndarray] = []
        dst: list[np.ndarray] = []
        opened = np.flatnonzero(open_set)
        step = K.rows_per_block(len(opened), BLOCK32)
        total = 0
        for s in range(0, len(opened), step):
            rp, later = opened[s : s + step], opened[s:]
            rows = torch.as_tensor(rp, device=space.device)
            cols = torch.as_tensor(later, device=space.device)
            e = space.edges(rows, cols, radius_sq)
            e &= space.gid_t[rows, None] != space.gid_t[None, cols]  # other groups only
            ij = K.to_numpy(torch.nonzero(torch.triu(e, diagonal=1)))  # pairs i < j once
            total += 2 * len(ij)
            _check_edges(total, max_edges)
            src.append(rp[ij[:, 0]])
            dst.append(later[ij[:, 1]])
        i, j = np.concatenate(src), np.concatenate(dst)
        a, b = np.concatenate([i, j]), np.concatenate([j, i])
        perm = np.lexsort((b, a))
        indptr = np.zeros(space.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(a, minlength=space.n), out=indptr[1:])
        return indptr, b[perm].astype(np.int32)

    def _by_group(self, rows: np.ndarray):
        """(group, lo, hi, local row indices) for the groups of the sorted positions ``rows``."""
        rows = np.sort(rows)
        cut = np.searchsorted(rows, self.bounds)
        for q in range(len(self.bounds) - 1):
            if cut[q] < cut[q + 1]:
                lo, hi = int(self.bounds[q]), int(self.bounds[q + 1])
                yield q, lo, hi, rows[cut[q] : cut[q + 1]] - lo

    def union(self, rows: np.ndarray) -> np.ndarray:
        """(N,) bool: the points in the ball of any of the sorted positions ``rows``."""
        out = np.zeros(self.n, dtype=bool)
        for q, lo, hi, loc in self._by_group(rows):
            if q in self.bits:
                bits = np.bitwise_or.reduce(self.bits[q][loc], axis=0)
                out[lo:hi] |= np.unpackbits(bits, count=hi - lo).astype(bool)
            else:
                out[lo + _gather(*self.lists[q], loc)] = True
        if self.cross is not None:
            out[_gather(*self.cross, np.asarray(rows))] = True
        return out

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """(N,) int64: for every point, how many of the sorted positions ``rows`` have it in
        their ball (the graph is symmetric: also how many of them are in its ball)."""
        out = np.zeros(self.n, dtype=np.int64)
        for q, lo, hi, loc in self._by_group(rows):
            if q in self.bits:
                step = max(1, (1 << 24) // (hi - lo))  # unpacked bytes per chunk
                for s in range(0, len(loc), step):
                    u = np.unpackbits(self.bits[q][loc[s : s + step]], axis=1, count=hi - lo)
                    out[lo:hi] += u.sum(0, dtype=np.int64)
            else:
                out[lo:hi] += np.bincount(_gather(*self.lists[q], loc), minlength=hi - lo)
        if self.cross is not None:
            out += np.bincount(_gather(*self.cross, np.asarray(rows)), minlength=self.n)
        return out


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The CSR lists of ``rows``, concatenated."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return indices[offsets + np.arange(int(lens.sum()))]


def _f32_down(v: float) -> float:
    """The largest float32 value <= ``v``."""
    f = np.float32(v)
    return float(np.nextafter(f, np.float32(-np.inf)) if f > v else f)


def _f32_up(v: float) -> float:
    """The smallest float32 value >= ``v``."""
    f = np.float32(v)
    return float(np.nextafter(f, np.float32(np.inf)) if f < v else f)


def _check_edges(total: int, max_edges: int) -> None:
    if total > max_edges:
        raise ValueError(
            f"the δ-ball graph has more than `max_edges`={max_edges} edges; "
            "use a smaller `delta` (or a smaller `purity` target) or raise `max_edges`"
        )


def _positions(idx: Index, local: np.ndarray) -> np.ndarray:
    """Sorted positions of the block-local indices ``local`` along an axis indexed by ``idx``."""
    if isinstance(idx, slice):
        return local + (idx.start or 0)
    return K.to_numpy(idx)[local]


class NeighbourCache:
    """Sorted nearest-neighbour lists of one cluster's members, reused across visits.

    TypiClust visits a cluster again after each of its points is picked; the typicality of the
    remaining points needs the ``nn`` smallest distances to the *remaining* points. The first visit
    keeps, for every member, its ``length`` nearest members (float64 squared distances, ascending);
    later visits read the first ``nn`` remaining entries of each list and recompute only the rows
    whose list ran short. The values are the same matrix entries the full computation yields, so
    the typicalities (and picks) are unchanged while a visit costs O(n·length) instead of O(n²d).
    """

    def __init__(self, x: torch.Tensor, length: int) -> None:
        self.x = K.to64(x)
        self.norms = K.sqnorms(self.x)
        n = self.x.shape[0]
        self.length = min(length, n - 1)
        self.vals, self.nbrs = self._nearest(np.arange(n), np.ones(n, dtype=bool))

    def _nearest(self, rows: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(rows), length) ascending distances to, and local indices of, the nearest alive
        members of each row (itself excluded)."""
        cols = np.flatnonzero(alive)
        length = min(self.length, len(cols) - 1)
        vals = np.empty((len(rows), length))
        nbrs = np.empty((len(rows), length), dtype=np.int64)
        step = K.rows_per_block(len(cols))
        ct = torch.as_tensor(cols, device=self.x.device)
        for s in range(0, len(rows), step):
            r = torch.as_tensor(rows[s : s + step], device=self.x.device)
            d = K.pairwise_sqdist(self.x[r], self.x[ct], self.norms[r], self.norms[ct])
            d[r[:, None] == ct[None, :]] = torch.inf  # a point is not its own neighbour
            top = torch.topk(d, length, dim=1, largest=False)
            vals[s : s + step] = K.to_numpy(top.values)
            nbrs[s : s + step] = cols[K.to_numpy(top.indices)]
        return vals, nbrs

    def _usable(self, rows: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Which list entries of ``rows`` are alive neighbours (refreshed lists are inf-padded)."""
        return alive[self.nbrs[rows]] & np.isfinite(self.vals[rows])

    def mean_sqdist(self, alive: np.ndarray, nn: int) -> np.ndarray:
        """Mean squared distance of every alive member to its ``nn`` nearest alive members."""
        rows = np.flatnonzero(alive)
        ok = self._usable(rows, alive)
        kept = np.cumsum(ok, axis=1)
        short = kept[:, -1] < nn
        if short.any():  # too many neighbours gone: refresh those lists against the survivors
            vals, nbrs = self._nearest(rows[short], alive)
            pad = self.vals.shape[1] - vals.shape[1]
            self.vals[rows[short]] = np.pad(vals, ((0, 0), (0, pad)), constant_values=np.inf)
            self.nbrs[rows[short]] = np.pad(nbrs, ((0, 0), (0, pad)), constant_values=rows[0])
            ok = self._usable(rows, alive)
            kept = np.cumsum(ok, axis=1)
        take = ok & (kept <= nn)
        nearest = torch.from_numpy(self.vals[rows][take].reshape(len(rows), nn))
        return K.to_numpy(nearest.mean(1))  # the same reduction as over a fresh top-k


def sqnorms64(x: np.ndarray) -> np.ndarray:
    """Exact float64 ``||x_i||²`` (the same sum as :meth:`BallSpace.exact` with a zero row)."""
    out = np.empty(x.shape[0], dtype=np.float64)
    step = K.rows_per_block(x.shape[1])
    for s in range(0, x.shape[0], step):
        b = x[s : s + step].astype(np.float64)
        out[s : s + step] = np.einsum("ij,ij->i", b, b)
    return out


def purity_sqradius(space: BallSpace, purity: float) -> tuple[float, np.ndarray]:
    """The ⌈purity·N⌉-th largest exact nearest-other-group squared distance (``inf`` with a single
    group), and the lower bounds on every point's distance (sorted order). Only the points whose
    float32 bounds straddle that order statistic are made exact."""
    n = space.n
    need = int(np.ceil(purity * n))
    q = n - need  # 0-based rank, ascending
    lo, hi = space.other_group_sqdist_bounds()
    if not np.isfinite(hi).any():
        return np.inf, lo
    lq, hq = np.partition(lo, q)[q], np.partition(hi, q)[q]
    below = hi < lq  # certainly smaller than the order statistic
    unsure = np.flatnonzero(~below & (lo <= hq))
    exact = space.other_group_sqdist_exact(unsure, hi[unsure])
    at = q - int(below.sum())
    return float(np.partition(exact, at)[at]), lo


def sampled_purity_sqradius(space: BallSpace, purity: float, pos: np.ndarray) -> float:
    """The ⌈purity·m⌉-th largest exact nearest-other-group squared distance over the ``m``
    sorted positions ``pos`` (``inf`` with a single group): the estimate of
    :func:`purity_sqradius` on a sample of ball centres, equal to it when ``pos`` holds every
    point. Costs one pass over ``m`` rows instead of all pairs."""
    r2 = space.other_group_sqdist_rows(np.sort(pos))
    if not np.isfinite(r2).any():
        return np.inf
    q = len(r2) - int(np.ceil(purity * len(r2)))
    return float(np.partition(r2, q)[q])
