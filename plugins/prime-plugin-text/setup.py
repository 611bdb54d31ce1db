"""Metadata lives in pyproject.toml. This file only adds ``prime_plugin_text_lmeval.pth`` at the root of the wheel
(so in site-packages), which makes ``lm_eval --model prime`` work from lm-eval's own CLI (see
prime_lmeval_hook.py): to ordinary wheels through build_py, to editable installs (pip install -e) through
editable_wheel."""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "prime_plugin_text_lmeval.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:
            self.copy_file(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode=1):
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


cmdclass = {"build_py": BuildPyWithPth}
try:
    from setuptools.command.editable_wheel import editable_wheel

    class EditableWheelWithPth(editable_wheel):
        # an editable wheel holds only a path hook; files at the root of its unpacked folder go to site-packages
        def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
            out = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
            shutil.copyfile(os.path.join(HERE, PTH), os.path.join(unpacked_wheel, PTH))
            return out

    cmdclass["editable_wheel"] = EditableWheelWithPth
except ImportError:  # an old setuptools without PEP 660: editable installs then lack the hook (documented)
    pass

setup(cmdclass=cmdclass)
