;;; cow-eglot.el --- cowdsl's language server for cow-mode, through Eglot  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Keywords: languages
;; Package-Requires: ((emacs "27.1") (eglot "1.9"))
;; SPDX-License-Identifier: MIT

;;; Commentary:

;; Registers `cowdsl lsp' as the language server of `cow-mode' buffers, so
;; M-x eglot (or `eglot-ensure' in `cow-mode-hook') gives diagnostics as you
;; type (Flymake), hover (ElDoc), completion, xref definitions and references,
;; rename, quick fixes (M-x eglot-code-actions) and formatting
;; (M-x eglot-format-buffer).  Eglot is built into Emacs 29; on Emacs 28,
;; M-x package-install RET eglot, or Debian's elpa-eglot.
;;
;;   (add-to-list 'load-path "/path/to/cowdsl/editors/emacs")
;;   (require 'cow-eglot)
;;   (add-hook 'cow-mode-hook #'eglot-ensure)
;;
;; `cow-eglot-server-command' says how to start the server (default:
;; cowdsl lsp, found on PATH).

;;; Code:

(require 'cow-mode)
(require 'eglot)

(defcustom cow-eglot-server-command '("cowdsl" "lsp")
  "The command that starts cowdsl's language server, and its arguments."
  :type '(repeat string)
  :group 'cow)

(defun cow-eglot-contact (&optional _interactive)
  "The server command for `eglot-server-programs'."
  cow-eglot-server-command)

(add-to-list 'eglot-server-programs '(cow-mode . cow-eglot-contact))

(provide 'cow-eglot)
;;; cow-eglot.el ends here
