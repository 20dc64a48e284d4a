"""Batched spherical k-means with k-means++ seeding.

MARS clusters, in every image, the embeddings of each class of the pseudo label into a
few centroids (Stage 3, step 1). An image holds 2-4 classes, so the clustering runs on
all of them at once: the classes are stacked into a padded ``(G, P, D)`` batch with a
``(G, P)`` validity mask, and every group may ask for its own number of clusters
(``K_fg`` for foreground classes, ``K_bg`` for background).

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
from typing import NamedTuple, Sequence, Union

import torch

#: Squared chord distance below which two unit vectors count as the same point.
_SAME_POINT = 1e-6


class KMeansResult(NamedTuple):
    """Output of :func:`batched_spherical_kmeans`.

    Attributes:
        centroids: ``(G, K, D)`` unit centroids; invalid slots are zero.
        valid: ``(G, K)`` bool, which slots hold a centroid (valid slots come first).
        assignment: ``(G, P)`` int64 cluster index of each point, -1 for padding.
        sizes: ``(G, K)`` int64 number of points per centroid.
    """
    centroids: torch.Tensor
    valid: torch.Tensor
    assignment: torch.Tensor
    sizes: torch.Tensor


def kmeans_plus_plus(points: torch.Tensor, mask: torch.Tensor,
                     num_clusters: torch.Tensor, max_clusters: int,
                     generator: torch.Generator) -> tuple:
    """k-means++ seeds for every group of a padded batch of unit vectors.

    Args:
        points: ``(G, P, D)`` unit vectors.
        mask: ``(G, P)`` bool, valid points.
        num_clusters: ``(G,)`` int64, clusters wanted per group.
        max_clusters: K, the number of centroid slots (``>= num_clusters.max()``).
        generator: source of randomness (on ``points.device``).

    Returns:
        tuple: ``(seeds (G, K, D), valid (G, K) bool)``.
    """
    num_groups, _, dim = points.shape
    seeds = points.new_zeros(num_groups, max_clusters, dim)
    valid = torch.zeros(num_groups, max_clusters, dtype=torch.bool,
                        device=points.device)
    weights = mask.to(points.dtype)
    # squared chord distance of every point to its nearest chosen seed so far
    nearest = torch.full(mask.shape, float('inf'), dtype=points.dtype,
                         device=points.device)
    rows = torch.arange(num_groups, device=points.device)
    for slot in range(max_clusters):
        if slot == 0:
            probs = weights
        else:
            probs = torch.where(nearest > _SAME_POINT, nearest, 0) * weights
        wanted = (slot < num_clusters) & (probs.sum(dim=1) > 0)
        if not bool(wanted.any()):
            break
        # torch.multinomial rejects all-zero rows: give those a dummy uniform row and
        # discard their draw through `wanted`.
        safe = torch.where(wanted[:, None], probs, torch.ones_like(probs))
        index = torch.multinomial(safe, 1, generator=generator).squeeze(1)
        chosen = points[rows, index]
        seeds[:, slot] = torch.where(wanted[:, None], chosen, 0)
        valid[:, slot] = wanted
        distance = (2 * (1 - torch.einsum('gpd,gd->gp', points, chosen))).clamp_min(0)
        nearest = torch.where(wanted[:, None], torch.minimum(nearest, distance),
                              nearest)
    return seeds, valid


def batched_spherical_kmeans(points: torch.Tensor, mask: torch.Tensor,
                             num_clusters: Union[int, Sequence[int], torch.Tensor],
                             num_iters: int = 30, seed: int = 0) -> KMeansResult:
    """Spherical k-means on every group of a padded batch at once.

    Args:
        points: ``(G, P, D)`` L2-normalised vectors (padding rows arbitrary).
        mask: ``(G, P)`` bool, valid points.
        num_clusters: K per group, an int or ``(G,)`` ints.
        num_iters: maximum Lloyd iterations (stops early when no point moves).
        seed: seed of the k-means++ draws.

    Returns:
        KMeansResult: centroids ``(G, K, D)``, valid ``(G, K)``, assignment
        ``(G, P)``, sizes ``(G, K)`` with ``K = max(num_clusters)``.
    """
    if points.ndim != 3 or mask.shape != points.shape[:2]:
        raise ValueError(f'points must be (G, P, D) with a (G, P) mask, got '
                         f'{tuple(points.shape)} and {tuple(mask.shape)}')
    num_groups = points.shape[0]
    num_clusters = torch.as_tensor(num_clusters, dtype=torch.int64,
                                   device=points.device).expand(num_groups)
    if num_groups and int(num_clusters.min()) < 1:
        raise ValueError(f'every group needs K >= 1, got {num_clusters.tolist()}')
    max_clusters = int(num_clusters.max()) if num_groups else 1
    mask = mask.bool()
    generator = torch.Generator(device=points.device)
    generator.manual_seed(seed)
    centroids, valid = kmeans_plus_plus(points, mask, num_clusters, max_clusters,
                                        generator)
    assignment = torch.full(mask.shape, -1, dtype=torch.int64, device=points.device)
    for _ in range(num_iters):
        similarity = torch.einsum('gpd,gkd->gpk', points, centroids)
        similarity = similarity.masked_fill(~valid[:, None, :], float('-inf'))
        new_assignment = torch.where(mask, similarity.argmax(dim=2), -1)
        if torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
        one_hot = torch.nn.functional.one_hot(assignment.clamp_min(0), max_clusters)
        one_hot = one_hot.to(points.dtype) * mask[..., None]
        sums = torch.einsum('gpk,gpd->gkd', one_hot, points)
        norms = sums.norm(dim=2, keepdim=True)
        # keep the previous centre of a cluster that lost its points (or whose members
        # cancel out exactly)
        keep_old = norms <= 1e-12
        centroids = torch.where(keep_old, centroids, sums / norms.clamp_min(1e-12))
    # the final assignment to the final centres (the loop may end on an update)
    similarity = torch.einsum('gpd,gkd->gpk', points, centroids)
    similarity = similarity.masked_fill(~valid[:, None, :], float('-inf'))
    assignment = torch.where(mask, similarity.argmax(dim=2), -1)
    one_hot = torch.nn.functional.one_hot(assignment.clamp_min(0), max_clusters)
    sizes = (one_hot * mask[..., None]).sum(dim=1)
    centroids = centroids * valid[..., None]
    return KMeansResult(centroids, valid, assignment, sizes)


def spherical_kmeans(points: torch.Tensor, num_clusters: int, num_iters: int = 30,
                     seed: int = 0) -> KMeansResult:
    """Spherical k-means on one set of ``(P, D)`` unit vectors (a batch of one)."""
    mask = torch.ones(points.shape[0], dtype=torch.bool, device=points.device)
    result = batched_spherical_kmeans(points[None], mask[None], num_clusters,
                                      num_iters, seed)
    return KMeansResult(*(tensor[0] for tensor in result))
