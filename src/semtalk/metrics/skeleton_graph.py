"""Skeleton graphs for the FGD feature encoder: edges, edge neighbourhoods and edge pooling.

The encoder treats each *edge* (bone) of the skeleton as a channel group. The edge list is one virtual
root edge `(0, J)` followed by `(parent[i], i)` for i = 1..J-1, so edge i carries joint i's rotation.
Edges are neighbours when their graph distance (edges sharing a joint are at distance 1) is at most a
threshold. Pooling merges consecutive edges along each chain between branching joints, pairwise, which
shrinks the SMPL-X graph from 55 edges to 35, then 20.

The traversal orders here fix the channel layout of the pretrained BEAT2 encoder
(`AESKConv_240_100.bin`); they must not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Edge = tuple[int, int]


def edges_from_parents(parents: Sequence[int]) -> list[Edge]:
    """Parent list (root = -1) -> edge list: the virtual root edge `(0, J)`, then `(parent[i], i)`."""
    num = len(parents)
    if num < 2 or parents[0] >= 0:
        raise ValueError("parents must start with the root (parent -1) and name at least two joints")
    for i in range(1, num):
        if not 0 <= parents[i] < num:
            raise ValueError(f"joint {i} has parent {parents[i]}, outside 0..{num - 1}")
    return [(0, num)] + [(int(parents[i]), i) for i in range(1, num)]


def edge_distances(edges: Sequence[Edge]) -> list[list[int]]:
    """All-pairs graph distance between edges (0 to itself, 1 when sharing a joint; Floyd-Warshall)."""
    n = len(edges)
    far = 10**6
    dist = [[0 if i == j else far for j in range(n)] for i in range(n)]
    for i, a in enumerate(edges):
        for j, b in enumerate(edges):
            if i != j and set(a) & set(b):
                dist[i][j] = 1
    for k in range(n):
        dk = dist[k]
        for i in range(n):
            dik = dist[i][k]
            if dik == far:
                continue
            di = dist[i]
            for j in range(n):
                if dik + dk[j] < di[j]:
                    di[j] = dik + dk[j]
    return dist


def edge_neighbours(edges: Sequence[Edge], max_distance: int) -> list[list[int]]:
    """For each edge, the sorted indices of edges within `max_distance` (itself included)."""
    dist = edge_distances(edges)
    return [[j for j in range(len(edges)) if row[j] <= max_distance] for row in dist]


@dataclass(frozen=True)
class EdgePooling:
    """How one pooling step merges edges.

    Attributes:
        groups: for each output edge, the input edge indices averaged into it.
        new_edges: the pooled graph's edges as (start joint, end joint); empty for a final pooling.
    """

    groups: tuple[tuple[int, ...], ...]
    new_edges: tuple[Edge, ...]


def _edge_chains(edges: Sequence[Edge]) -> list[list[int]]:
    """Chains of edge indices between branching joints (degree > 2) and end effectors, depth first from
    joint 0, visiting children in edge-list order."""
    degree: dict[int, int] = {}
    for a, b in edges:
        degree[a] = degree.get(a, 0) + 1
        degree[b] = degree.get(b, 0) + 1
    children: dict[int, list[int]] = {}
    for idx, (a, _) in enumerate(edges):
        children.setdefault(a, []).append(idx)
    chains: list[list[int]] = []

    def walk(joint: int, chain: list[int]) -> None:
        if degree.get(joint, 0) > 2 and joint != 0:
            chains.append(chain)
            chain = []
        if degree.get(joint, 0) == 1:
            chains.append(chain)
            return
        for idx in children.get(joint, []):
            walk(edges[idx][1], chain + [idx])

    walk(0, [])
    return chains


def plan_pooling(edges: Sequence[Edge], last: bool = False) -> EdgePooling:
    """Pool each chain pairwise (a chain of odd length keeps its first edge alone); with `last`, each whole
    chain becomes one group and no new graph is formed."""
    groups: list[tuple[int, ...]] = []
    new_edges: list[Edge] = []
    for chain in _edge_chains(edges):
        if last:
            groups.append(tuple(chain))
            continue
        if len(chain) % 2 == 1:
            groups.append((chain[0],))
            new_edges.append(tuple(edges[chain[0]]))
            chain = chain[1:]
        for i in range(0, len(chain), 2):
            groups.append((chain[i], chain[i + 1]))
            new_edges.append((edges[chain[i]][0], edges[chain[i + 1]][1]))
    return EdgePooling(groups=tuple(groups), new_edges=tuple(new_edges))
