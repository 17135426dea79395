"""The nodes the ComfyUI loopback knows, and ComfyUI's validation of a workflow.

Checked against comfyanonymous/ComfyUI ``execution.py`` (``validate_prompt``,
``validate_inputs``): the error types, messages and ``node_errors`` shape are
ComfyUI's own; the node set is the text-to-image one (see ``nodes.py`` for
their ``INPUT_TYPES`` / ``RETURN_TYPES``).
"""

from __future__ import annotations

from typing import Any

SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "ddim"]
SCHEDULERS = ["normal", "karras", "exponential", "simple"]


def node_specs(models: list[str]) -> dict[str, dict[str, Any]]:
    """INPUT_TYPES / RETURN_TYPES / OUTPUT_NODE of the nodes this server knows."""
    size = {"default": 512, "min": 16, "max": 16384, "step": 8}
    return {
        "CheckpointLoaderSimple": {
            "required": {"ckpt_name": (list(models),)},
            "returns": ("MODEL", "CLIP", "VAE"),
        },
        "CLIPTextEncode": {
            "required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)},
            "returns": ("CONDITIONING",),
        },
        "EmptyLatentImage": {
            "required": {
                "width": ("INT", size),
                "height": ("INT", size),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            },
            "returns": ("LATENT",),
        },
        "KSampler": {
            "required": {
                "model": ("MODEL",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                "sampler_name": (SAMPLERS,),
                "scheduler": (SCHEDULERS,),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT",),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
            },
            "returns": ("LATENT",),
        },
        "VAEDecode": {"required": {"samples": ("LATENT",), "vae": ("VAE",)}, "returns": ("IMAGE",)},
        "SaveImage": {
            "required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
            "returns": (),
            "output": True,
        },
        "PreviewImage": {"required": {"images": ("IMAGE",)}, "returns": (), "output": True},
    }


def _err(type_: str, message: str, details: str, extra: dict | None = None) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra or {}}


def validate_prompt(prompt: Any, models: list[str]) -> tuple[bool, Any, list[str], Any]:
    specs = node_specs(models)
    if not isinstance(prompt, dict):
        return (
            False,
            _err("invalid_prompt", "Cannot execute because the prompt is not a dict.", ""),
            [],
            {},
        )
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            msg = "Cannot execute because a node is missing the class_type property."
            return False, _err("invalid_prompt", msg, f"Node ID '#{node_id}'"), [], {}
        if node["class_type"] not in specs:
            msg = f"Cannot execute because node {node['class_type']} does not exist."
            return False, _err("invalid_prompt", msg, f"Node ID '#{node_id}'"), [], {}
        if specs[node["class_type"]].get("output"):
            outputs.append(node_id)
    if not outputs:
        return False, _err("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
    node_errors: dict[str, Any] = {}
    lines: list[str] = []
    for out in outputs:
        for node_id in _reachable(prompt, out):
            errors = validate_inputs(prompt, node_id, specs)
            if errors:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": errors,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(out)
                lines += [f"{e['message']}: {e['details']}" for e in errors]
    good = [o for o in outputs if not any(o in e["dependent_outputs"] for e in node_errors.values())]
    if not good:
        msg = "Prompt outputs failed validation"
        return False, _err("prompt_outputs_failed_validation", msg, "\n".join(lines)), [], node_errors
    return True, None, good, node_errors


def _reachable(prompt: dict, start: str) -> list[str]:
    seen: list[str] = []
    stack = [start]
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen.append(node_id)
        for value in (prompt[node_id].get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2:
                stack.append(str(value[0]))
    return seen


def validate_inputs(prompt: dict, node_id: str, specs: dict) -> list[dict[str, Any]]:
    node = prompt[node_id]
    inputs = node.get("inputs") or {}
    errors = []
    for name, info in specs[node["class_type"]]["required"].items():
        if name not in inputs:
            errors.append(
                _err("required_input_missing", "Required input is missing", name, {"input_name": name})
            )
            continue
        err = _check_value(prompt, name, inputs[name], info, specs)
        if err:
            errors.append(err)
        elif info[0] in ("INT", "FLOAT"):
            inputs[name] = int(inputs[name]) if info[0] == "INT" else float(inputs[name])
    return errors


def _check_value(prompt: dict, name: str, val: Any, info: tuple, specs: dict) -> dict | None:
    kind = info[0]
    extra = {"input_name": name, "input_config": list(info), "received_value": val}
    if isinstance(val, list):
        if len(val) != 2:
            msg = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            return _err("bad_linked_input", msg, name, extra)
        source = prompt.get(str(val[0]))
        returns = specs[source["class_type"]]["returns"] if source else ()
        got = returns[val[1]] if isinstance(val[1], int) and val[1] < len(returns) else None
        if got != kind:
            return _err(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{name}, received_type({got}) mismatch input_type({kind})",
                extra,
            )
        return None
    if isinstance(kind, list):
        if val not in kind:
            listed = str(kind) if len(kind) <= 20 else f"(list of length {len(kind)})"
            return _err("value_not_in_list", "Value not in list", f"{name}: '{val}' not in {listed}", extra)
        return None
    try:
        num = int(val) if kind == "INT" else float(val) if kind == "FLOAT" else str(val)
    except (TypeError, ValueError) as exc:
        return _err(
            "invalid_input_type",
            f"Failed to convert an input value to a {kind} value",
            f"{name}, {val}, {exc}",
            extra,
        )
    limits = info[1] if len(info) > 1 else {}
    if isinstance(num, (int, float)) and "min" in limits and num < limits["min"]:
        return _err("value_smaller_than_min", f"Value {num} smaller than min of {limits['min']}", name, extra)
    if isinstance(num, (int, float)) and "max" in limits and num > limits["max"]:
        return _err("value_bigger_than_max", f"Value {num} bigger than max of {limits['max']}", name, extra)
    return None
