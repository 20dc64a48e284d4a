"""A family of planted-bias datasets: presets of the generator.

Defaults of anything in mars_mm are judged across this family, never on one member.
Each preset changes one or two axes of the ``default`` one, so that a method that
only works for one look, size or bias strength shows it:

================ ============================================================
preset           what differs from ``default``
================ ============================================================
default          6 classes; boat on water, train on rails; P(ctx | class)
                 0.9, P(ctx | no class) 0.1; 128 x 128
small-objects    objects at 0.55x height on 160 x 160 images
large-objects    objects at 1.4x height
weak-bias        P(context | class) 0.6
strong-bias      P(context | class) 0.95, P(context | no class) 0.05
textures         gradient and periodic contexts: aeroplane in sky, boat on
                 snow, train on tiles, car under a brick wall
many-classes     12 classes, 5 biased (water, rails, sky, grass, road)
voc-like         VOC ids and names (21 classes, 8 used), images of 110-160 x
                 150-210, objects at 0.7x; aeroplane in sky, boat on water,
                 train on rails
================ ============================================================
"""
from typing import Dict

VOC_LIKE_CLASSES = ('aeroplane', 'bird', 'boat', 'car', 'cat', 'person', 'sheep',
                    'train')

PRESETS: Dict[str, dict] = {
    'default': dict(),
    'small-objects': dict(object_scale=0.55, image_size=(160, 160)),
    'large-objects': dict(object_scale=1.4),
    'weak-bias': dict(p_with=0.6),
    'strong-bias': dict(p_with=0.95, p_without=0.05),
    'textures': dict(
        classes=('aeroplane', 'boat', 'train', 'car', 'bird', 'cat'),
        bias_pairs=(dict(cls='aeroplane', context='sky'),
                    dict(cls='boat', context='snow'),
                    dict(cls='train', context='tiles'),
                    dict(cls='car', context='brick'))),
    'many-classes': dict(
        classes=('boat', 'train', 'aeroplane', 'horse', 'car', 'bird', 'cat',
                 'bottle', 'person', 'bus', 'dog', 'sheep'),
        bias_pairs=(dict(cls='boat', context='water'),
                    dict(cls='train', context='rails'),
                    dict(cls='aeroplane', context='sky'),
                    dict(cls='horse', context='grass'),
                    dict(cls='car', context='road'))),
    'voc-like': dict(
        classes=VOC_LIKE_CLASSES, voc_ids=True, object_scale=0.7,
        image_size=((110, 160), (150, 210)), num_train=300,
        bias_pairs=(dict(cls='aeroplane', context='sky'),
                    dict(cls='boat', context='water'),
                    dict(cls='train', context='rails'))),
}


def preset_kwargs(name: str) -> dict:
    """The generator arguments of preset ``name`` (a copy).

    Raises:
        KeyError: naming the known presets.
    """
    if name not in PRESETS:
        raise KeyError(f'unknown planted-bias preset {name!r}; known: '
                       f'{", ".join(PRESETS)}')
    return dict(PRESETS[name])
