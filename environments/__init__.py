"""Environment models, their TF-Agents adapters, the Rubik's cube and a toy."""

from environments.model import EnvironmentModel
from environments.model import ModelEnvironment
from environments.model import ModelPyEnvironment
from environments.model import ModelStep
from environments.rubiks_cube import RubiksCube
from environments.toy import ToyModel
