;;; cow-eglot-test.el --- cow-eglot against the real server  -*- lexical-binding: t; -*-

;; COWDSL_PYTHON=python3 COWDSL_FILE=typo.cow emacs --batch -Q -L editors/emacs \
;;   -l editors/emacs/test/cow-eglot-test.el -f ert-run-tests-batch-and-exit
;;
;; COWDSL_FILE is a .cow file with the typo `longtem' on line 3, in a folder
;; of its own (the project Eglot manages).  Eglot comes with Emacs 29, or from
;; ELPA or Debian's elpa-eglot on Emacs 28.

;;; Code:

(require 'ert)
(require 'package)
;; Debian's elpa-* packages (elpa-eglot on Emacs 28), which -Q does not load
(add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
(package-initialize)
(require 'cow-eglot)
(require 'flymake)

(defun cow-eglot-test--wait (pred &optional secs)
  "Wait up to SECS seconds (default 30) for PRED to return non-nil."
  (let ((deadline (+ (float-time) (or secs 30))) (v nil))
    (while (and (not (setq v (funcall pred))) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    v))

(ert-deftest cow-eglot-diagnostics-hover-fix ()
  (let* ((file (getenv "COWDSL_FILE"))
         (cow-eglot-server-command (list (or (getenv "COWDSL_PYTHON") "python3") "-m" "cowdsl.lsp.server"))
         (dir (file-name-directory file))
         (project-find-functions (list (lambda (_) (cons 'transient dir))))
         (eglot-sync-connect t))
    (should (equal (cow-eglot-contact) cow-eglot-server-command))
    (with-current-buffer (find-file-noselect file)
      (should (eq major-mode 'cow-mode))
      (unwind-protect
          (progn
            (call-interactively #'eglot)
            (should (eglot-current-server))
            (flymake-mode 1)
            (flymake-start)
            (should (cow-eglot-test--wait (lambda () (flymake-diagnostics))))
            (let ((d (car (flymake-diagnostics))))
              (should (string-match-p "did you mean `longterm`" (flymake-diagnostic-text d)))
              (should (equal (line-number-at-pos (flymake-diagnostic-beg d)) 3)))
            ;; hover, as ElDoc asks it
            (let* ((server (eglot-current-server))
                   (hover (jsonrpc-request server :textDocument/hover
                                           (list :textDocument (eglot--TextDocumentIdentifier)
                                                 :position (list :line 2 :character 4)))))
              (should (string-match-p "pin_user_pages" (plist-get (plist-get hover :contents) :value))))
            ;; the quick fix, applied by Eglot
            (goto-char (point-min))
            (forward-line 2)
            (search-forward "longtem")
            (let ((actions (jsonrpc-request (eglot-current-server) :textDocument/codeAction
                                            (list :textDocument (eglot--TextDocumentIdentifier)
                                                  :range (list :start (list :line 2 :character 12)
                                                               :end (list :line 2 :character 19))
                                                  :context (list :diagnostics [])))))
              (should (equal (plist-get (aref actions 0) :title) "Replace `longtem` with `longterm`"))
              (eglot--apply-workspace-edit (plist-get (aref actions 0) :edit)))
            (should (string-match-p "pin(buf, longterm) as mr" (buffer-string))))
        (when (eglot-current-server)
          (eglot-shutdown (eglot-current-server)))
        (set-buffer-modified-p nil)
        (kill-buffer)))))

(provide 'cow-eglot-test)
;;; cow-eglot-test.el ends here
