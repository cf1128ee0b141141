"""Fetching the benchmark's three files: which files and their records (`files`), the
resumable HTTP transfer (`http`)."""
from data_prep.download.files import FILES, OFFICIAL_URLS, RECORDS_NAME, download, file_url, read_records
from data_prep.download.http import AccessRefused, DownloadError

__all__ = ["AccessRefused", "DownloadError", "FILES", "OFFICIAL_URLS", "RECORDS_NAME", "download", "file_url",
           "read_records"]
