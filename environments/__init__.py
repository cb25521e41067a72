"""Environment models, their TF-Agents adapter, and the Rubik's cube."""

from environments.model import EnvironmentModel
from environments.model import ModelEnvironment
from environments.model import ModelStep
from environments.rubiks_cube import RubiksCube
