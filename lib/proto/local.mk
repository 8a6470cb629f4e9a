# lib/proto: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/proto/ir.c lib/proto/ir.h \
	lib/proto/apierr.c lib/proto/apierr.h \
	lib/proto/wire.c lib/proto/wire.h \
	lib/proto/openai.h lib/proto/openai_int.h \
	lib/proto/openai_request_decode.c lib/proto/openai_request_encode.c \
	lib/proto/openai_stream_decode.c lib/proto/openai_stream_encode.c \
	lib/proto/openai_error.c \
	lib/proto/anthropic.h lib/proto/anthropic_int.h \
	lib/proto/anthropic_request_decode.c lib/proto/anthropic_request_encode.c \
	lib/proto/anthropic_stream_decode.c lib/proto/anthropic_stream_encode.c \
	lib/proto/anthropic_error.c \
	lib/proto/responses.h lib/proto/responses_int.h \
	lib/proto/responses_request_decode.c lib/proto/responses_request_encode.c \
	lib/proto/responses_stream_decode.c lib/proto/responses_stream_encode.c \
	lib/proto/responses_error.c \
	lib/proto/bridge.c lib/proto/bridge.h \
	lib/proto/codec.h \
	lib/proto/sanitize.c lib/proto/sanitize.h \
	lib/proto/continuation.c lib/proto/continuation.h
lib_libantigw_a_SOURCES += \
	lib/proto/kiro.h lib/proto/kiro_names.c \
	lib/proto/kiro_request_encode.c lib/proto/kiro_stream_decode.c
lib_libantigw_a_SOURCES += \
	lib/proto/copilot_messages.c lib/proto/copilot_messages.h
