"""Variables an ``[[import]]`` may not set: they change which code a program
loads or runs, or where it sends its traffic, not what it is configured with.

Whoever can write one key of an imported secret would otherwise choose
``LD_PRELOAD`` (a library in every process), ``BASH_ENV`` (a script every
non-interactive bash runs), ``SHELLOPTS=xtrace`` + ``PS4`` (code run by a bash
entrypoint), ``NODE_OPTIONS=--require``, ``PYTHONSTARTUP``, a proxy that
sees every request, or a CA bundle that trusts their certificate. Such a name
coming from an import is refused (exit 65) unless that import lists it in
``allow = [...]``; an ``[env]`` entry the manifest author wrote by name is
always allowed.
"""

from __future__ import annotations

NAMES = frozenset({
    # the dynamic loader and libc
    "GCONV_PATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NLSPATH", "MALLOC_CHECK_", "TZDIR",
    # shells
    "PATH", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH",
    "GLOBIGNORE", "SHELL", "ZDOTDIR",
    # interpreters and runtimes
    "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS",
    "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE", "PYTHONBREAKPOINT",
    "PYTHONWARNINGS", "PYTHONEXECUTABLE",
    "PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB",
    "RUBYOPT", "RUBYLIB",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
    "PHPRC", "PHP_INI_SCAN_DIR", "LUA_INIT", "LUA_PATH", "LUA_CPATH", "TCLLIBPATH",
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_ASKPASS", "SSH_ASKPASS", "LESSOPEN", "EDITOR", "PAGER",
    # where traffic goes, and whom TLS trusts
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
})

PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "GIT_CONFIG_")


def is_loader_variable(name: str) -> bool:
    return name in NAMES or name.startswith(PREFIXES)
