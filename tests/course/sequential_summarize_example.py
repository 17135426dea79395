# sequential_summarize_example.py
from lollms_magics import LollmsClient
import pipmaster as pm
from ascii_colors import ASCIIColors

# Ensure docling is installed for document conversion
if not pm.is_installed("docling"):
    ASCIIColors.info("Installing docling...")
    pm.install("docling")
from docling.document_converter import DocumentConverter

ASCIIColors.set_log_file("lollms_client_module_log.log") # Optional logging

try:
    lc = LollmsClient() # Assumes default http://localhost:9600
    ASCIIColors.info("LollmsClient initialized for summarization.")

    # Example: Summarize an online PDF (ensure network access)
    # Replace with a URL of a text-heavy document or a long local text file
    # article_url = "https://arxiv.org/pdf/2109.09572" # Example ArXiv paper
    # For a local file, you'd read its content into article_text
    # For this example, let's use a long string to avoid external dependencies for running the snippet easily
    article_text = """
    The field of artificial intelligence (AI) has seen remarkable advancements in recent years,
    particularly in the domain of natural language processing (NLP). Large Language Models (LLMs)
    have emerged as powerful tools capable of understanding, generating, and manipulating human
    language with unprecedented fluency. This document explores the architecture of LLMs,
    focusing on the Transformer model which underpins many state-of-the-art systems.
    Transformers utilize a mechanism called self-attention, allowing them to weigh the
    importance of different parts of the input sequence when processing information.
    This enables them to handle long-range dependencies effectively.
    Training these models typically involves two stages: pre-training on vast unlabeled
    text corpora, followed by fine-tuning on smaller, task-specific datasets.
    The ethical implications of LLMs, including bias, misinformation, and potential misuse,
    are also critical areas of ongoing research and discussion. As LLMs become more integrated
    into various applications, ensuring their responsible development and deployment is paramount.
    Further research is needed to enhance their reasoning capabilities, reduce computational costs,
    and improve their factual accuracy and robustness against adversarial attacks.
    The development of smaller, more efficient models is also a key trend.
    """*5 # Multiply to make it longer for summarization demo

    ASCIIColors.info("Simulated article text loaded.")

    # Define the summarization prompt (instructions for the LLM for each chunk)
    # This prompt guides the LLM on what to extract or how to build the summary iteratively.
    summarization_instructions = """
    Please extract the key points and main arguments from this text chunk.
    Integrate this information with any summary content already provided in the memory.
    Focus on novel information presented in the current chunk.
    The goal is to build a comprehensive yet concise summary of the entire document.
    Maintain a neutral and objective tone.
    Output the updated summary.
    """

    # Define the final formatting prompt (how to structure the complete summary)
    final_report_instructions = """
    Compile the accumulated information into a final, coherent summary.
    Organize the summary into logical paragraphs.
    Ensure the summary flows well and captures all essential aspects of the document.
    Present the output as a single block of text.
    ## Final Summary
    [Place the comprehensive summary here]
    """
    ASCIIColors.info("Starting sequential summarization...")
    # Note: Adjust ctx_size and chunk_size based on your model's capabilities
    # and the nature of the document. Larger ctx_size for the LLM is generally better.
    # The 'chunk_size' here is for how DocumentConverter or lc breaks down the input text.
    summary_output = lc.sequential_summarize(
        full_text_content=article_text,
        instruction_prompt=summarization_instructions,
        output_format_prompt=final_report_instructions, # Use this for final formatting stage
        # text_format="markdown", # Not a direct param, output_format_prompt implies structure
        context_size=8192,  # LLM's context size
        chunk_size=2048,    # How text is chunked for LLM processing
        # bootstrap_chunk_size=1024, # For initial context building, if needed
        # bootstrap_steps=1,         # Number of bootstrap steps
        debug=False # Set to True for verbose output from lollms_client
    )

    ASCIIColors.green("\n--- Generated Summary ---")
    ASCIIColors.yellow(summary_output)

except Exception as e:
    ASCIIColors.error(f"An error occurred during summarization: {e}")
    # from ascii_colors import trace_exception # Already imported if using from example
    # trace_exception(e) # For detailed traceback
