# tti_example.py
from lollms_magics import LollmsClient
from ascii_colors import ASCIIColors, trace_exception
from PIL import Image
from pathlib import Path
import io
import os
import platform # For os.name and platform.system()
import subprocess # for platform.system() == "Darwin" or os.name == 'posix'

try:
    # Initialize LollmsClient, specifying the tti_binding_name if you want to
    # target a specific TTI binding configured in lollms.
    # If not specified, it might use a default or require selection.
    lc = LollmsClient(
        host_address="http://localhost:9600",
        tti_binding_name="lollms" # 'lollms' TTI binding often proxies to a service like Automatic1111, ComfyUI, etc.
                                  # Ensure this binding is active and configured in your lollms server.
    )

    if not lc.tti:
        ASCIIColors.error("TTI binding could not be initialized. Ensure 'lollms' TTI binding is active and configured in your LoLLMs server.")
        # exit() # In a real script, you might exit or handle this
    else:
        # 1. List available TTI services (backends configured in lollms for image generation)
        ASCIIColors.cyan("\n--- Listing TTI Services ---")
        services = lc.tti.list_services()
        if services:
            ASCIIColors.green("Available TTI Services:")
            for i, service in enumerate(services):
                print(f"  {i+1}. Name: {service.get('name')}, Caption: {service.get('caption')}")
        else:
            ASCIIColors.yellow("No TTI services listed. Check lollms TTI configuration.")

        # 2. Get current TTI settings (template/schema for the active service)
        ASCIIColors.cyan("\n--- Getting Active TTI Settings ---")
        # This usually returns a settings template that shows what parameters are configurable.
        settings_template = lc.tti.get_settings()
        if isinstance(settings_template, list) and settings_template : # Template is a list of setting dicts
            ASCIIColors.green("Active TTI Settings Template:")
            for setting_item in settings_template[:5]: # Show first 5 for brevity
                print(f"  - Name: {setting_item.get('name')}, Type: {setting_item.get('type')}, Value: {setting_item.get('value')}, Help: {setting_item.get('help')}")
        elif not settings_template:
             ASCIIColors.yellow("No active TTI service or settings template configured on the server.")
        else:
            ASCIIColors.yellow(f"Could not retrieve TTI settings or format unexpected: {settings_template}")

        # 3. Generate an Image
        ASCIIColors.cyan("\n--- Generating Image ---")
        prompt = "A majestic owl with glowing eyes, perched on a mythical tree, fantasy art"
        negative_prompt = "blurry, ugly, low quality, watermark, text, human"
        width = 768
        height = 512
        
        # Ensure output directory exists
        output_dir = Path.home() / "Documents" / "lollms_generated_images"
        output_dir.mkdir(parents=True, exist_ok=True)
        output_filename = output_dir / "ai_fantasy_owl.png"

        ASCIIColors.info(f"Prompt: {prompt}")
        ASCIIColors.info(f"Output to: {output_filename}")

        image_bytes = lc.tti.generate_image(
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=width,
            height=height,
            # Other parameters like 'seed', 'steps', 'cfg_scale' can be passed as kwargs
            # if supported by the active TTI service in lollms.
            # E.g., seed=12345
        )

        if image_bytes:
            ASCIIColors.green(f"Image generated successfully ({len(image_bytes)} bytes).")
            try:
                image = Image.open(io.BytesIO(image_bytes))
                image.save(output_filename)
                ASCIIColors.green(f"Image saved as {output_filename}")
                # Attempt to open the image
                if os.name == 'nt': os.startfile(output_filename)
                elif platform.system() == "Darwin": subprocess.call(["open", output_filename])
                elif os.name == 'posix': subprocess.call(["xdg-open", output_filename])
            except Exception as e_save:
                ASCIIColors.error(f"Error processing or saving image: {e_save}")
        else:
            ASCIIColors.red("Image generation failed (returned empty bytes). Check lollms server logs.")

except Exception as e:
    ASCIIColors.error(f"An TTI-related error occurred: {e}")
    trace_exception(e)
