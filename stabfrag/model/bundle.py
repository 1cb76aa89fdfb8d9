"""The artefacts a build uses, loaded and checked together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stabfrag.config import packaged
from stabfrag.errors import ModelError
from stabfrag.model.encoder import SCEN_MODEL_ID, STAB_MODEL_ID, Encoder, load_encoder
from stabfrag.model.joint import JointModel, load_joint
from stabfrag.schema import JOINT_MODEL_ID


def shipped_models() -> Path:
    """The folder of artefacts shipped inside the package."""
    return packaged("models")


@dataclass(frozen=True)
class Models:
    """The three artefacts a build uses."""

    stab: Encoder
    scen: Encoder
    joint: JointModel

    def hashes(self) -> dict[str, str]:
        return {
            STAB_MODEL_ID: self.stab.sha256,
            SCEN_MODEL_ID: self.scen.sha256,
            JOINT_MODEL_ID: self.joint.sha256,
        }


def load_models(folder: Path | None = None) -> Models:
    folder = folder or shipped_models()
    models = Models(
        stab=load_encoder(folder, STAB_MODEL_ID),
        scen=load_encoder(folder, SCEN_MODEL_ID),
        joint=load_joint(folder),
    )
    if not np.array_equal(models.stab.projection, models.scen.projection):
        # Different bases would make cos(z_stab, z_scen) meaningless.
        raise ModelError(f"{folder}: {STAB_MODEL_ID} and {SCEN_MODEL_ID} use different projections")
    return models
