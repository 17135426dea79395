"""A lollms-client 0.17-1.14 user's script: DALL-E pictures through the "dalle" TTI binding.

Written as for lollms-client (``from lollms_client import LollmsClient``);
only the import line differs. The image server is OpenAI's API or a
compatible one (``tti_binding_config["host_address"]``).
"""

from lollms_magics import LollmsClient

lc = LollmsClient(
    binding_name="openai",
    tti_binding_name="dalle",
    tti_binding_config={"host_address": "https://api.openai.com/v1", "model_name": "dall-e-2",
                        "default_size": "256x256"},
)
services = lc.tti.list_services()
print("Services:", ", ".join(s["name"] for s in services))
image = lc.tti.generate_image("A red fox in the snow")
print(f"Picture: {len(image) > 0} bytes, PNG={image[:8] == bytes.fromhex('89504e470d0a1a0a')}")
with open("fox.png", "wb") as f:
    f.write(image)
