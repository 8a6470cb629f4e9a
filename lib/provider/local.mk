# lib/provider: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/provider/provider.c lib/provider/provider.h \
	lib/provider/type_openai.c \
	lib/provider/type_anthropic.c \
	lib/provider/answer_rules.c lib/provider/answer_rules.h
lib_libantigw_a_SOURCES += \
	lib/provider/copilot_auth.c lib/provider/copilot_auth.h \
	lib/provider/type_copilot.c
lib_libantigw_a_SOURCES += \
	lib/provider/type_kiro.c
lib_libantigw_a_SOURCES += \
	lib/provider/credential.c lib/provider/credential.h \
	lib/provider/kiro_auth.c lib/provider/kiro_auth.h
