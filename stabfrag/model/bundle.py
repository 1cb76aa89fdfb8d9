"""The artefacts a build uses, loaded and checked together: a joint model and the two
encoders its manifest names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stabfrag.config import packaged
from stabfrag.errors import ModelError
from stabfrag.model.encoder import Encoder, load_encoder
from stabfrag.model.joint import JOINT_V4, JointModel, load_joint

# The joint model a build uses when none is named and the folder holds several: v4 is v3
# (v2's market weather, a date's entities ranked by their fitted risk) plus the factor
# block that names the shock type when a build declares its factors (bench/README.md).
DEFAULT_JOINT = JOINT_V4
JOINT_PREFIX = "joint-stab-fragility-"


def shipped_models() -> Path:
    """The folder of artefacts shipped inside the package."""
    return packaged("models")


@dataclass(frozen=True)
class Models:
    """The three artefacts a build uses."""

    stab: Encoder
    scen: Encoder
    joint: JointModel

    @property
    def model_id(self) -> str:
        return self.joint.model_id

    def hashes(self) -> dict[str, str]:
        return {
            self.stab.model_id: self.stab.sha256,
            self.scen.model_id: self.scen.sha256,
            self.joint.model_id: self.joint.sha256,
        }


def joint_models(folder: Path) -> list[str]:
    """The joint model ids with an artefact in `folder`."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob(f"{JOINT_PREFIX}*") if (p / "manifest.json").exists())


def pick_joint(folder: Path, model: str | None) -> str:
    """The named joint model, or the default one, or the only one in `folder`."""
    present = joint_models(folder)
    if model is not None:
        if model not in present:
            raise ModelError(
                f"{folder}: no joint model {model} (present: {', '.join(present) or 'none'})"
            )
        return model
    if DEFAULT_JOINT in present:
        return DEFAULT_JOINT
    if len(present) == 1:
        return present[0]
    raise ModelError(
        f"{folder}: {'no joint model' if not present else 'several joint models'}; pass --model"
    )


def load_models(folder: Path | None = None, model: str | None = None) -> Models:
    """Load a joint model (`model`, or the folder's default) and its two encoders."""
    folder = folder or shipped_models()
    joint = load_joint(folder, pick_joint(folder, model))
    models = Models(
        stab=load_encoder(folder, joint.branches["stab"]),
        scen=load_encoder(folder, joint.branches["scen"]),
        joint=joint,
    )
    if not np.array_equal(models.stab.projection, models.scen.projection):
        # Different bases would make cos(z_stab, z_scen) meaningless.
        raise ModelError(
            f"{folder}: {models.stab.model_id} and {models.scen.model_id} use different projections"
        )
    return models
