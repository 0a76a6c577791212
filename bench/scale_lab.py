"""Seeded registries for the scale benchmarks, kept between runs (seeding 20,000 tags costs minutes).

Plain HTTP seeding through the lab's own helpers, many requests at once: images first (each a config and a small
layer), then every tag a PUT of an image's manifest. A registry's storage lives in .tmp/bench/labs/<name> and is
reused by the next run once its marker file says the seeding finished.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from common import OUT

from tests.lab import seed
from tests.lab.registry import start_registry

LABS = OUT / "labs"


def image_created(i: int) -> str:
    """Image ``i`` is ``i`` minutes after 2024-01-01 (distinct, ordered dates)."""
    return f"2024-01-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"


def seed_repository(session: seed.LabSession, repo: str, images: int, tags_per_image: int, pool: ThreadPoolExecutor,
                    seed_base: int = 0) -> dict[str, str]:
    """``images`` single-layer images tagged ``build-<n>`` (``tags_per_image`` tags each, n = tag number);
    returns ``{tag: digest}``."""
    def push(i: int) -> dict:
        return seed.push_image(session, repo, None, created=image_created(i), layer_sizes=(64,), seed=seed_base + i,
                               labels={"build": str(i)})

    pushed = list(pool.map(push, range(images)))
    tags = {f"build-{n}": pushed[n // tags_per_image] for n in range(images * tags_per_image)}
    list(pool.map(lambda item: seed.put_manifest(session, repo, item[0], item[1]["raw"], item[1]["media_type"]),
                  tags.items()))
    return {tag: image["digest"] for tag, image in tags.items()}


def seeded_lab(name: str, repositories: dict[str, tuple[int, int]], concurrency: int = 12):
    """A plain registry holding ``repositories`` ({repo: (images, tags_per_image)}), seeded once and kept in
    .tmp/bench/labs/<name>; ``lab.seeded`` is ``{repo: {tag: digest}}``."""
    workdir = LABS / name
    marker = workdir / "seeded.json"
    wanted = {repo: list(shape) for repo, shape in repositories.items()}
    if marker.exists() and json.loads(marker.read_text())["shape"] != wanted:
        raise SystemExit(f"{workdir} holds another shape: remove it to reseed")
    lab = start_registry("plain", workdir)
    if not marker.exists():
        session = seed.LabSession(lab)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            seeded = {repo: seed_repository(session, repo, images, per_image, pool, seed_base=r * 100_000)
                      for r, (repo, (images, per_image)) in enumerate(sorted(repositories.items()))}
        marker.write_text(json.dumps({"shape": wanted, "tags": seeded}))
    lab.seeded = json.loads(marker.read_text())["tags"]
    return lab
