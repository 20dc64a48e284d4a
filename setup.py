"""Install mars_mm. Requirements live in requirements/*.txt (one source of truth)."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    lines = (HERE / 'requirements' / f'{name}.txt').read_text().splitlines()
    reqs = [line.split('#', 1)[0].strip() for line in lines]
    return [r for r in reqs if r]


def read_version() -> str:
    text = (HERE / 'mars_mm' / 'version.py').read_text()
    return re.search(r"__version__ = '([^']+)'", text).group(1)


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
