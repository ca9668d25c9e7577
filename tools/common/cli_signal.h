/* cli_signal.h — the tools that write GGUF files remove their temporary file when interrupted. */
#ifndef APR_TOOLS_CLI_SIGNAL_H
#define APR_TOOLS_CLI_SIGNAL_H

/* On SIGINT, SIGTERM and SIGHUP (each unless ignored, as under nohup) removes the named temporary
 * file of a GGUF write in progress (apr_gguf_writer_unlink_temps), then dies of the signal. */
void cli_signal_cleanup_temps(void);

#endif
