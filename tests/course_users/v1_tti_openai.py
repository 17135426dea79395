"""A lollms-client 1.x user's script: pictures from an OpenAI-compatible image server.

Written as for lollms-client 1.15+ (``from lollms_client import LollmsClient``);
only the import line differs. lollms-client 1.x's ``openai`` TTI binding reads
``base_url``, ``api_key`` and ``model_name`` from ``tti_binding_config``.
"""

from lollms_magics import LollmsClient

lc = LollmsClient(
    llm_binding_name="openai",
    llm_binding_config={"host_address": "http://localhost:1234/v1", "model_name": ""},
    tti_binding_name="openai",
    tti_binding_config={"base_url": "http://localhost:1234/v1", "api_key": "sk-local-images",
                        "model_name": "dall-e-3"},
)
print("Image models:", ", ".join(m["model_name"] for m in lc.tti.list_models()))
image = lc.tti.generate_image("A lighthouse at dusk", width=1024, height=1024)
print(f"Picture: {len(image) > 0}, PNG={image[:8] == bytes.fromhex('89504e470d0a1a0a')}")
