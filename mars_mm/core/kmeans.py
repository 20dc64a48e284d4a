"""Batched spherical k-means with k-means++ seeding.

MARS clusters, in every image, the embeddings of each class of the pseudo label into a
few centroids (Stage 3, step 1). An image holds 2-4 classes, so the clustering runs on
all of them at once: :func:`grouped_spherical_kmeans` takes the image's ``(P, D)``
pixels with a ``(P,)`` class-group index (every point meets only its own group's
centres), and every group may ask for its own number of clusters (``K_fg`` for
foreground classes, ``K_bg`` for background). :func:`batched_spherical_kmeans` is the
same on a padded ``(G, P, D)`` batch.

Conventions (documented behaviour for degenerate inputs):

* Points are unit vectors (the caller L2-normalises); similarity is the dot product and
  centroids are renormalised means (spherical k-means, Dhillon and Modha 2001).
* Seeding is k-means++ on the squared chord distance ``|a - b|^2 = 2 (1 - a.b)``, drawn
  from a ``torch.Generator`` seeded with ``seed``, so a call is reproducible.
* A group with fewer *distinct* points than its K gets fewer centroids: seeding stops
  when every remaining point coincides with a chosen centre. A group with no valid
  point gets none. Unused centroid slots are zero and flagged invalid.
* A cluster that loses all its points during the Lloyd iterations keeps its previous
  centre (it cannot happen to a seed that is itself a point unless points coincide).
"""
from typing import NamedTuple, Optional, Sequence, Union

import torch

#: Squared chord distance below which two unit vectors count as the same point.
_SAME_POINT = 1e-6


class KMeansResult(NamedTuple):
    """Output of the k-means functions.

    Attributes:
        centroids: ``(G, K, D)`` unit centroids; invalid slots are zero.
        valid: ``(G, K)`` bool, which slots hold a centroid (valid slots come first).
        assignment: int64 cluster index (within its group) of each point: ``(P,)``
            for flat input, ``(G, P)`` with -1 on padding for a padded batch.
        sizes: ``(G, K)`` int64 number of points per centroid.
    """
    centroids: torch.Tensor
    valid: torch.Tensor
    assignment: torch.Tensor
    sizes: torch.Tensor


def kmeans_plus_plus(points: torch.Tensor, groups: torch.Tensor,
                     num_clusters: torch.Tensor, max_clusters: int,
                     generator: torch.Generator) -> tuple:
    """k-means++ seeds for every group of a flat set of unit vectors.

    Args:
        points: ``(P, D)`` unit vectors.
        groups: ``(P,)`` int64 group of each point in ``0..G-1``.
        num_clusters: ``(G,)`` int64, clusters wanted per group.
        max_clusters: K, the number of centroid slots (``>= num_clusters.max()``).
        generator: source of randomness (on ``points.device``).

    Returns:
        tuple: ``(seeds (G, K, D), valid (G, K) bool)``.
    """
    num_groups, dim = len(num_clusters), points.shape[1]
    seeds = points.new_zeros(num_groups, max_clusters, dim)
    valid = torch.zeros(num_groups, max_clusters, dtype=torch.bool,
                        device=points.device)
    # (G, P) membership: the only padded array, without the D dimension
    member = groups[None, :] == torch.arange(num_groups, device=points.device)[:, None]
    # squared chord distance of every point to its group's nearest seed so far
    nearest = torch.full((points.shape[0],), float('inf'), dtype=points.dtype,
                         device=points.device)
    for slot in range(max_clusters):
        if slot == 0:
            probs = member.to(points.dtype)
        else:
            probs = member * torch.where(nearest > _SAME_POINT, nearest, 0)[None]
        wanted = (slot < num_clusters) & (probs.sum(dim=1) > 0)
        if not bool(wanted.any()):
            break
        # torch.multinomial rejects all-zero rows: give those a dummy uniform row and
        # discard their draw through `wanted`.
        safe = torch.where(wanted[:, None], probs, torch.ones_like(probs))
        chosen = points[torch.multinomial(safe, 1, generator=generator).squeeze(1)]
        seeds[:, slot] = torch.where(wanted[:, None], chosen, 0)
        valid[:, slot] = wanted
        distance = (2 * (1 - (points * chosen[groups]).sum(dim=1))).clamp_min(0)
        nearest = torch.where(wanted[groups], torch.minimum(nearest, distance),
                              nearest)
    return seeds, valid


def grouped_spherical_kmeans(points: torch.Tensor, groups: torch.Tensor,
                             num_clusters: Union[int, Sequence[int], torch.Tensor],
                             num_groups: Optional[int] = None, num_iters: int = 30,
                             seed: int = 0) -> KMeansResult:
    """Spherical k-means of every group of a flat point set at once.

    Each point is compared only with its own group's K centres, so the cost per
    iteration is O(P K D) whatever the group sizes (no padding to the largest group).

    Args:
        points: ``(P, D)`` L2-normalised vectors.
        groups: ``(P,)`` group index of each point in ``0..G-1``.
        num_clusters: K per group, an int or ``(G,)`` ints.
        num_groups: G (default ``groups.max() + 1``); groups without points get no
            centroid.
        num_iters: maximum Lloyd iterations (stops early when no point moves).
        seed: seed of the k-means++ draws.

    Returns:
        KMeansResult: centroids ``(G, K, D)``, valid ``(G, K)``, assignment ``(P,)``
        (index within the group's K), sizes ``(G, K)``; ``K = max(num_clusters)``.
    """
    if points.ndim != 2 or groups.shape != points.shape[:1]:
        raise ValueError(f'points must be (P, D) with (P,) groups, got '
                         f'{tuple(points.shape)} and {tuple(groups.shape)}')
    groups = groups.to(device=points.device, dtype=torch.int64)
    if num_groups is None:
        num_groups = int(groups.max()) + 1 if groups.numel() else 0
    num_clusters = torch.as_tensor(num_clusters, dtype=torch.int64,
                                   device=points.device).expand(num_groups)
    if num_groups and int(num_clusters.min()) < 1:
        raise ValueError(f'every group needs K >= 1, got {num_clusters.tolist()}')
    max_clusters = int(num_clusters.max()) if num_groups else 1
    generator = torch.Generator(device=points.device)
    generator.manual_seed(seed)
    centroids, valid = kmeans_plus_plus(points, groups, num_clusters, max_clusters,
                                        generator)

    # every point may only join a valid centre of its own group: an additive mask
    # over all G K centres turns the group-wise argmax into one flat argmax
    allowed = torch.zeros(points.shape[0], num_groups, max_clusters, dtype=torch.bool,
                          device=points.device)
    allowed[torch.arange(points.shape[0], device=points.device), groups] = \
        valid[groups]
    bias = torch.zeros(allowed.shape, dtype=points.dtype, device=points.device)
    bias = bias.masked_fill(~allowed, float('-inf')).view(points.shape[0], -1)

    def assign(centres: torch.Tensor) -> torch.Tensor:
        """Flat index ``group * K + slot`` of each point's most similar centre."""
        similarity = torch.addmm(bias, points, centres.view(-1, points.shape[1]).t())
        return similarity.argmax(dim=1)

    flat_assignment = torch.full(groups.shape, -1, dtype=torch.int64,
                                 device=points.device)
    for _ in range(num_iters):
        new_assignment = assign(centroids)
        if torch.equal(new_assignment, flat_assignment):
            break
        flat_assignment = new_assignment
        sums = points.new_zeros(num_groups * max_clusters, points.shape[1])
        sums.index_add_(0, flat_assignment, points)
        sums = sums.view(num_groups, max_clusters, -1)
        norms = sums.norm(dim=2, keepdim=True)
        # keep the previous centre of a cluster that lost its points (or whose members
        # cancel out exactly)
        centroids = torch.where(norms <= 1e-12, centroids,
                                sums / norms.clamp_min(1e-12))
    # the final assignment to the final centres (the loop may end on an update)
    if len(points):
        flat_assignment = assign(centroids)
    assignment = flat_assignment - groups * max_clusters if len(points) \
        else flat_assignment
    sizes = torch.bincount(flat_assignment.clamp_min(0),
                           minlength=num_groups * max_clusters)
    sizes = sizes.view(num_groups, max_clusters)
    centroids = centroids * valid[..., None]
    return KMeansResult(centroids, valid, assignment, sizes)


def batched_spherical_kmeans(points: torch.Tensor, mask: torch.Tensor,
                             num_clusters: Union[int, Sequence[int], torch.Tensor],
                             num_iters: int = 30, seed: int = 0) -> KMeansResult:
    """Spherical k-means on every group of a padded ``(G, P, D)`` batch at once.

    Args:
        points: ``(G, P, D)`` L2-normalised vectors (padding rows arbitrary).
        mask: ``(G, P)`` bool, valid points.
        num_clusters: K per group, an int or ``(G,)`` ints.
        num_iters: maximum Lloyd iterations (stops early when no point moves).
        seed: seed of the k-means++ draws.

    Returns:
        KMeansResult: centroids ``(G, K, D)``, valid ``(G, K)``, assignment
        ``(G, P)`` (-1 for padding), sizes ``(G, K)`` with ``K = max(num_clusters)``.
    """
    if points.ndim != 3 or mask.shape != points.shape[:2]:
        raise ValueError(f'points must be (G, P, D) with a (G, P) mask, got '
                         f'{tuple(points.shape)} and {tuple(mask.shape)}')
    mask = mask.bool()
    group_index, point_index = torch.nonzero(mask, as_tuple=True)
    result = grouped_spherical_kmeans(points[group_index, point_index], group_index,
                                      num_clusters, points.shape[0], num_iters, seed)
    assignment = torch.full(mask.shape, -1, dtype=torch.int64, device=points.device)
    assignment[group_index, point_index] = result.assignment
    return result._replace(assignment=assignment)


def spherical_kmeans(points: torch.Tensor, num_clusters: int, num_iters: int = 30,
                     seed: int = 0) -> KMeansResult:
    """Spherical k-means on one set of ``(P, D)`` unit vectors (a single group)."""
    groups = torch.zeros(points.shape[0], dtype=torch.int64, device=points.device)
    result = grouped_spherical_kmeans(points, groups, num_clusters, 1, num_iters, seed)
    return KMeansResult(result.centroids[0], result.valid[0], result.assignment,
                        result.sizes[0])
