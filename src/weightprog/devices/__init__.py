"""Memory-device models, looked up by name or by file path."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightprogError
from .base import DeviceModel, DeviceState, piecewise_linear
from .pcm import IdealDevice, LowDriftPCMDevice, PCMDevice
from .scaled import ScaledDevice, Scales
from .tabulated import TabulatedDevice, load_tabulated, tabulated_from_dict

BUILTIN = {"pcm": PCMDevice, "pcm-lowdrift": LowDriftPCMDevice, "ideal": IdealDevice}
PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    """Tabulated devices shipped with the package (devices/presets/*.yaml)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def device_names() -> list[str]:
    """Names `get_device` knows: the built-in models, then the shipped presets.

    Returns
    -------
    list of str
    """
    return sorted(BUILTIN) + preset_names()


def get_device(spec: str | Path | DeviceModel) -> DeviceModel:
    """A device from a built-in name, a shipped preset name, or a YAML/JSON file path, optionally
    with scaled properties: `NAME:programming=4,read=4` (keys of `Scales`).

    Parameters
    ----------
    spec
        A name of `device_names()`, a device file (.yaml, .yml, .json), either followed by
        `:KEY=FACTOR,…` to scale its noise or drift, or a `DeviceModel` (returned as is).

    Returns
    -------
    DeviceModel

    Raises
    ------
    WeightprogError
        An unknown name, a missing or invalid file, or bad scale factors.
    """
    if isinstance(spec, DeviceModel):
        return spec
    text = str(spec)
    base, sep, scales = text.rpartition(":")
    if sep and "=" in scales and not Path(text).exists():
        return ScaledDevice(get_device(base), Scales.parse(scales, f"device {text!r}"))
    if text in BUILTIN:
        return BUILTIN[text]()
    if (PRESET_DIR / f"{text}.yaml").is_file():
        return load_tabulated(PRESET_DIR / f"{text}.yaml")
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise WeightprogError(f"device: file {path} not found")
        return load_tabulated(path)
    raise WeightprogError(f"device: unknown device {text!r}; use one of {', '.join(device_names())} "
                          f"or a .yaml/.json file")


__all__ = ["DeviceModel", "DeviceState", "PCMDevice", "LowDriftPCMDevice", "IdealDevice",
           "TabulatedDevice", "ScaledDevice", "Scales", "get_device", "device_names", "preset_names", "load_tabulated",
           "tabulated_from_dict", "piecewise_linear"]
