"""Magenta's progressive-growing schedule as plain arithmetic on the image count.

Training alternates stable and transition stages: stage 0 trains block 1 alone,
stage 1 fades block 2 in, stage 2 trains blocks 1..2, and so on; 2R - 1 stages for R
resolutions. The global step counts images, so a resumed run knows exactly where it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    num_resolutions: int
    stable_images: int
    transition_images: int
    total_images: int
    batch_size_schedule: tuple[int, ...]
    progressive: bool = True

    @classmethod
    def from_hparams(cls, hparams: dict, num_resolutions: int) -> "Schedule":
        return cls(num_resolutions, hparams["stable_stage_num_images"],
                   hparams["transition_stage_num_images"], hparams["total_num_images"],
                   tuple(hparams["batch_size_schedule"]), hparams["train_progressive"])

    @property
    def num_stages(self) -> int:
        return 2 * self.num_resolutions - 1 if self.progressive else 1

    def num_blocks(self, stage: int) -> int:
        if not self.progressive:
            return self.num_resolutions
        return min((stage + 1) // 2 + 1, self.num_resolutions)

    def stage_end(self, stage: int) -> int:
        """Image count at which `stage` ends (the last stage runs to total_images)."""
        if not self.progressive or stage >= self.num_stages - 1:
            return self.total_images
        end = (stage // 2 + 1) * self.stable_images + ((stage + 1) // 2) * self.transition_images
        return min(end, self.total_images)

    def stage_of(self, images: int) -> int:
        for stage in range(self.num_stages):
            if images < self.stage_end(stage):
                return stage
        return self.num_stages - 1

    def batch_size(self, stage: int) -> int:
        """Magenta pads a short batch_size_schedule at the front with its first entry."""
        sizes = list(self.batch_size_schedule)
        sizes = [sizes[0]] * (self.num_resolutions - len(sizes)) + sizes
        return sizes[self.num_blocks(stage) - 1]

    def progress(self, images: int, num_blocks: int) -> float:
        """Magenta's compute_progress: p in stable stage p, p + fraction while fading in."""
        if not self.progressive:
            return float(self.num_resolutions - 1)
        cap = num_blocks * self.stable_images + (num_blocks - 1) * self.transition_images - 1
        images = min(images, cap)
        per_stage = self.stable_images + self.transition_images
        fraction = max(0.0, (images % per_stage - self.stable_images) / self.transition_images)
        return float(images // per_stage) + fraction

    def done(self, images: int) -> bool:
        return images >= self.total_images

    def eta_seconds(self, images: int, images_per_second: float) -> float:
        if images_per_second <= 0:
            return math.inf
        return max(0, self.total_images - images) / images_per_second
