"""Install mars_mm. Requirements live in requirements/*.txt (one source of truth).

A built wheel carries the configs and tools as OpenMMLab packages do: ``build_py``
copies ``configs/``, ``tools/``, ``projects/`` and ``model-index.yml`` into
``mars_mm/.mim/`` of the build (mmseg's ``.mim``), where
``mars_mm.utils.package_files`` and openmim find them. An editable install
(``pip install -e .``) copies nothing: the clone holds them.
"""
import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: What a wheel carries under mars_mm/.mim/, relative to the repository root.
MIM_FILES = ('configs', 'tools', 'projects', 'model-index.yml')


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    reqs = [line.split('#', 1)[0].strip() for line in lines]
    return [r for r in reqs if r]


def read_version() -> str:
    text = (HERE / 'mars_mm' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies :data:`MIM_FILES` into ``mars_mm/.mim``."""

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return  # the clone is the package root of an editable install
        target = Path(self.build_lib) / 'mars_mm' / '.mim'
        for name in MIM_FILES:
            source, dest = HERE / name, target / name
            if dest.is_dir():
                shutil.rmtree(dest)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.pyc'))
            elif source.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)


setup(
    name='mars_mm',
    version=read_version(),
    description='MARS (ICCV 2023) biased-object removal for weakly-supervised '
    'semantic segmentation, on MMSegmentation 1.x',
    long_description=(HERE / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    cmdclass={'build_py': BuildPyWithMim},
    entry_points={'console_scripts': ['mars-mm = mars_mm.apis.cli:main']},
    install_requires=read_requirements('runtime'),
    extras_require={
        # OpenMMLab packages are an extra so that GPU users keep their own full mmcv
        # build instead of pip pulling a second copy.
        'mim': read_requirements('mminstall'),
        'optional': read_requirements('optional'),
        'tests': read_requirements('tests'),
        'all': read_requirements('mminstall') + read_requirements('optional')
        + read_requirements('tests'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
