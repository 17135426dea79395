# client_setup_example.py
from lollms_magics import LollmsClient, ELF_GENERATION_FORMAT
from ascii_colors import ASCIIColors # For colored console output

# Default lollms server
LOLLMS_HOST = "http://localhost:9600"

try:
    # Basic client for default lollms server interaction
    lc_default = LollmsClient(host_address=LOLLMS_HOST)
    ASCIIColors.green(f"Default client initialized for: {lc_default.host_address}")
    ASCIIColors.info(f"Using binding: {lc_default.binding_name}, Model: {lc_default.binding.model_name if lc_default.binding else 'N/A'}")

    # Example: Client targeting an Ollama binding (if lollms is configured to proxy it or client talks directly)
    # Ensure Ollama server is running, e.g., at http://localhost:11434
    # lc_ollama = LollmsClient(
    #     binding_name="ollama", # Instructs client to use OllamaBinding
    #     host_address="http://localhost:11434", # Ollama's direct address
    #     model_name="llama3:latest" # Specific model in Ollama
    # )
    # ASCIIColors.green(f"\nOllama client initialized for: {lc_ollama.host_address}")
    # ASCIIColors.info(f"Using binding: {lc_ollama.binding_name}, Model: {lc_ollama.binding.model_name}")

except Exception as e:
    ASCIIColors.error(f"Error during client initialization: {e}")
