"""ament_flake8's check, the lint ROS 2 packages run as a test (configuration: .flake8)."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_flake8_ament_style():
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', 'src', 'tests', 'training', 'launch'], cwd=ROOT,
        capture_output=True, text=True)
    assert result.returncode == 0, f'flake8 found issues:\n{result.stdout}{result.stderr}'
