import os

import numpy as np
import pytest
from PIL import Image

from mars_mm.utils.io import (
    atomic_write,
    is_temporary,
    load_label_png,
    save_label_png,
    voc_palette,
)


def test_voc_palette_matches_devkit_colours():
    palette = voc_palette()
    # Colours from the VOC devkit's labelcolormap (background, aeroplane, person,
    # tvmonitor, and the 255 border colour).
    assert tuple(palette[0]) == (0, 0, 0)
    assert tuple(palette[1]) == (128, 0, 0)
    assert tuple(palette[15]) == (192, 128, 128)
    assert tuple(palette[20]) == (0, 64, 128)
    assert tuple(palette[255]) == (224, 224, 192)


def test_label_png_round_trip_keeps_special_values(tmp_path):
    label = np.array([[0, 1, 20], [254, 255, 3]], dtype=np.uint8)
    path = str(tmp_path / 'a.png')
    save_label_png(path, label)
    with Image.open(path) as image:
        assert image.mode == 'P'
    np.testing.assert_array_equal(load_label_png(path), label)


def test_save_label_png_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match='bad.png'):
        save_label_png(str(tmp_path / 'bad.png'), np.array([[300]]))
    with pytest.raises(ValueError, match='2-D'):
        save_label_png(str(tmp_path / 'bad.png'), np.zeros((2, 2, 3)))


def test_load_label_png_errors_name_the_file(tmp_path):
    missing = str(tmp_path / 'missing.png')
    with pytest.raises(FileNotFoundError, match='missing.png'):
        load_label_png(missing)
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'\x89PNG\r\n\x1a\n-truncated')
    with pytest.raises(ValueError, match='broken.png'):
        load_label_png(str(broken))
    rgb = tmp_path / 'rgb.png'
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match='mode'):
        load_label_png(str(rgb))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / 'out.npy'
    with pytest.raises(RuntimeError):
        with atomic_write(str(target)) as tmp:
            with open(tmp, 'wb') as f:
                f.write(b'partial')
            raise RuntimeError('killed')
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / 'out.txt'
    target.write_text('old')
    with atomic_write(str(target)) as tmp:
        assert is_temporary(tmp) and tmp.endswith('.txt')
        with open(tmp, 'w') as f:
            f.write('new')
        assert target.read_text() == 'old'
    assert target.read_text() == 'new'
    assert os.listdir(tmp_path) == ['out.txt']


def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        target = tmp_path / 'shared.png'
        save_label_png(str(target), np.zeros((2, 2), np.uint8))
        assert (target.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize('name, problem', [
    ('COCO_train2014_000000000009.jpg', None),
    ('2021.05.000003.jpg', None),
    ('with space.jpg', None),
    ('', 'empty'), ('  ', 'empty'),
    ('/x/y/evil.jpg', 'absolute'), ('\\\\server\\evil.jpg', 'absolute'),
    ('C:evil.jpg', 'absolute'),
    ('../evil.jpg', 'separator'), ('sub/evil.jpg', 'separator'),
    ('sub\\evil.jpg', 'separator'), ('..', 'folder'), ('.', 'folder'),
    ('a\x00b', 'NUL'),
])
def test_plain_file_name(name, problem):
    from mars_mm.utils.io import plain_file_name
    found = plain_file_name(name)
    assert (found is None) if problem is None else (problem in found), found


@pytest.mark.parametrize('text, name', [
    ('000024', '000024'), ('000024.jpg', '000024'), ('000024.JPEG', '000024'),
    ('000024.v2', '000024.v2'), ('000024.v2.png', '000024.v2'),
    ('2021.05.000003', '2021.05.000003'), ('  my photo.jpg \r', 'my photo'),
    ('.jpg', '.jpg'),
])
def test_listed_image_name_strips_only_an_image_suffix(text, name):
    from mars_mm.utils.io import listed_image_name
    assert listed_image_name(text) == name


@pytest.mark.parametrize('text', ['../x', '/x/y.jpg', 'a/b.jpg', '..', ''])
def test_listed_image_name_refuses_paths(text):
    from mars_mm.utils.io import listed_image_name
    with pytest.raises(ValueError, match='is not an image name'):
        listed_image_name(text)


def test_read_user_text_bom_crlf_and_bad_encoding(tmp_path):
    from mars_mm.utils.io import read_user_text
    path = tmp_path / 'a.txt'
    path.write_bytes('x\r\ny\r\n'.encode('utf-8-sig'))
    assert read_user_text(str(path)).splitlines() == ['x', 'y']
    path.write_bytes('caf\xe9\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=r'a\.txt: not UTF-8 text'):
        read_user_text(str(path))
    with pytest.raises(ValueError, match='is a folder'):
        read_user_text(str(tmp_path))


@pytest.mark.parametrize('orientation, size', [(1, (20, 40)), (3, (20, 40)),
                                               (6, (40, 20)), (8, (40, 20)),
                                               (5, (40, 20))])
def test_image_size_applies_the_exif_rotation_as_the_loaders_do(
        tmp_path, orientation, size):
    import mmcv

    from mars_mm.utils.io import image_size
    path = str(tmp_path / 'photo.jpg')
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new('RGB', (40, 20)).save(path, exif=exif.tobytes())
    assert image_size(path) == size
    assert mmcv.imread(path).shape[:2] == size  # what LoadImageFromFile decodes


def test_image_size_names_a_missing_or_broken_file(tmp_path):
    from mars_mm.utils.io import image_size
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        image_size(str(tmp_path / 'nope.jpg'))
    (tmp_path / 'bad.jpg').write_bytes(b'not an image')
    with pytest.raises(ValueError, match=r'bad\.jpg: cannot read image'):
        image_size(str(tmp_path / 'bad.jpg'))


def test_output_folder_that_is_a_file(tmp_path):
    from mars_mm.utils.io import make_output_dir
    (tmp_path / 'f').write_text('x')
    with pytest.raises(ValueError, match=r'f: the output folder is a file'):
        make_output_dir(str(tmp_path / 'f'))
    assert os.path.isdir(make_output_dir(str(tmp_path / 'a' / 'b')))


def test_label_size_reads_the_png_header(tmp_path):
    from mars_mm.utils.io import label_size
    path = str(tmp_path / 'a.png')
    save_label_png(path, np.zeros((7, 13), np.uint8))
    assert label_size(path) == (7, 13)
    Image.new('L', (5, 3)).save(str(tmp_path / 'b.bmp'))  # another format: PIL
    assert label_size(str(tmp_path / 'b.bmp')) == (3, 5)
    (tmp_path / 'c.png').write_bytes(b'nothing')
    with pytest.raises(ValueError, match=r'c\.png: cannot read label map'):
        label_size(str(tmp_path / 'c.png'))
