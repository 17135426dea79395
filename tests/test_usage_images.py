"""``%lollms usage`` counts pictures per image backend and model, apart from the text answers (issue 18)."""

from __future__ import annotations

from IPython.utils.capture import capture_output

from tests.test_magics import cell, final, ip  # noqa: F401  (ip is the fixture)


def pictures_of(cap):
    """The metadata of the picture a %lollms image cell displayed last."""
    return cap.outputs[-1].metadata["lollms_magics"]


def table(text, head):
    """The rows of the table whose header starts with ``head``: name -> the other cells."""
    block = next(b for b in text.split("\n\n") if b.startswith(head))
    lines = block.splitlines()
    return {line.split()[0]: line.split()[1:] for line in lines[1:]}


def test_usage_counts_a_text_answer_and_pictures_from_two_backends(ip, openai_server, a1111_server,  # noqa: F811
                                                                     comfyui_server):
    answer = final(cell(ip, f"-b openai --host {openai_server.url}", "one"))
    a1 = pictures_of(cell(ip, f"image -b a1111 --host {a1111_server.url} -n 2 -W 64 -H 64 an owl"))
    a2 = pictures_of(cell(ip, f"image -b a1111 --host {a1111_server.url} -W 64 -H 64 a fox"))
    c1 = pictures_of(cell(ip, f"image -b comfyui --host {comfyui_server.url} -W 64 -H 64 a cat"))
    assert len(a1["size"]) == 2 and len(a2["size"]) == 1 and len(c1["size"]) == 1  # what was really made

    text = cell(ip, "usage").stdout
    words = table(text, "backend:model")
    info = answer.metadata["lollms_magics"]
    assert words["openai:test-model"][:3] == ["1", str(info["prompt_tokens"]), str(info["completion_tokens"])]
    assert words["total"][0] == "1"  # the pictures are not counted as text calls

    pictures = table(text, "image backend:model")
    a1111 = f"a1111:{a1['model']}"
    comfyui = f"comfyui:{c1['model']}"
    assert set(pictures) == {a1111, comfyui, "total"}
    assert pictures[a1111][:2] == ["2", "3"] and pictures[comfyui][:2] == ["1", "1"]
    assert pictures["total"][:2] == ["3", "4"]
    # the time is the servers' time for each request, as each picture's metadata says
    assert abs(float(pictures[a1111][2]) - (a1["duration"] + a2["duration"])) < 0.15
    assert abs(float(pictures[comfyui][2]) - c1["duration"]) < 0.15
    assert len(a1111_server.requests_to("/sdapi/v1/txt2img")) == 2


def test_a_failed_picture_adds_nothing_and_reset_clears_pictures(ip, openai_server, a1111_server):  # noqa: F811
    with capture_output():
        result = ip.run_cell(f"%lollms image -b openai --host {openai_server.url} -m dall-e-3 forbidden")
    assert result.error_in_exec is not None  # the server refused it
    assert cell(ip, "usage").stdout == "lollms: no answers yet in this session\n"

    made = pictures_of(cell(ip, f"image -b a1111 --host {a1111_server.url} -W 64 -H 64 an owl"))
    text = cell(ip, "usage").stdout
    assert "backend:model  calls  tokens in" not in text  # no text answers: only the pictures' table
    assert table(text, "image backend:model")[f"a1111:{made['model']}"][:2] == ["1", "1"]
    cell(ip, "usage reset")
    assert cell(ip, "usage").stdout == "lollms: no answers yet in this session\n"
