;;; cow-mode-test.el --- ERT tests for cow-mode  -*- lexical-binding: t; -*-

;; emacs --batch -Q -L editors/emacs -l editors/emacs/test/cow-mode-test.el -f ert-run-tests-batch-and-exit
;;
;; The font-lock test reads editors/tests/words.cow and words.tsv (generated
;; by editors/generate.py from the op registry: line, column, length,
;; category, text) and checks the face at every character of every entry.

;;; Code:

(require 'ert)
(require 'cow-mode)

(defconst cow-test--dir
  (expand-file-name "../../tests/" (file-name-directory (or load-file-name buffer-file-name))))

(defconst cow-test--faces
  '(("declaration" . cow-declaration-face) ("keyword" . cow-keyword-face)
    ("operator-word" . cow-operator-face) ("constant" . cow-constant-face)
    ("outcome" . cow-outcome-face) ("op" . cow-op-face) ("fact" . cow-fact-face)
    ("flag" . cow-flag-face) ("kwarg" . cow-kwarg-face) ("builtin-actor" . cow-builtin-actor-face)
    ("actor" . cow-actor-face) ("backend" . cow-backend-face) ("number" . cow-number-face)
    ("param" . cow-param-face)
    ("string" . font-lock-string-face) ("comment" . font-lock-comment-face) ("plain" . nil)))

(defun cow-test--faces-at (pos)
  (let ((f (get-text-property pos 'face)))
    (if (listp f) f (list f))))

(defun cow-test--rows ()
  (with-temp-buffer
    (insert-file-contents (expand-file-name "words.tsv" cow-test--dir))
    (let (rows)
      (dolist (line (split-string (buffer-string) "\n" t))
        (unless (string-prefix-p "#" line)
          (push (split-string line "\t") rows)))
      (nreverse rows))))

(ert-deftest cow-mode-highlights-every-word ()
  "Every word of the op registry, in its context, gets the face of its category."
  (with-temp-buffer
    (insert-file-contents (expand-file-name "words.cow" cow-test--dir))
    (cow-mode)
    (font-lock-ensure)
    (let ((failures '()) (checks 0))
      (dolist (row (cow-test--rows))
        (pcase-let* ((`(,line ,col ,len ,cat ,text) row)
                     (want (cdr (assoc cat cow-test--faces))))
          (save-excursion
            (goto-char (point-min))
            (forward-line (1- (string-to-number line)))
            (let ((start (+ (point) (1- (string-to-number col)))))
              (catch 'next
                (dotimes (i (string-to-number len))
                  (setq checks (1+ checks))
                  (let ((got (cow-test--faces-at (+ start i))))
                    (unless (if want (memq want got) (null (delq nil got)))
                      (push (format "words.cow:%s:%d: `%s' (%s): face %S, expected %S"
                                    line (+ (string-to-number col) i) text cat got want)
                            failures)
                      (throw 'next nil)))))))))
      (should (> checks 500))
      (should (equal (nreverse failures) '())))))

(ert-deftest cow-mode-indents-par-blocks ()
  (with-temp-buffer
    (cow-mode)
    (insert "process A\npar {\nA: write(buf, 1)\n      B: write(buf, 2)\n}\nassert A.buf == 1\n")
    (indent-region (point-min) (point-max))
    (should (equal (buffer-string)
                   "process A\npar {\n    A: write(buf, 1)\n    B: write(buf, 2)\n}\nassert A.buf == 1\n"))))

(ert-deftest cow-mode-comments ()
  (with-temp-buffer
    (cow-mode)
    (insert "A: fork() as B  # fork \"quoted\" pin(x)\n")
    (should (nth 4 (syntax-ppss (- (point-max) 3))))
    (should-not (nth 4 (syntax-ppss 5)))
    (erase-buffer)
    (insert "A: write(buf, 1)\n")
    (comment-region (point-min) (point-max))
    (should (equal (buffer-string) "# A: write(buf, 1)\n"))))

(ert-deftest cow-mode-auto-mode ()
  (should (eq (assoc-default "x/y/scenario.cow" auto-mode-alist #'string-match) 'cow-mode)))

(ert-deftest cow-mode-words-match-the-fixture ()
  "The generated word lists name every category the fixture checks."
  (dolist (cat '(declaration keyword operator-word constant outcome op fact fact-bare flag kwarg builtin-actor))
    (should (assq cat cow-mode-words))))

(provide 'cow-mode-test)
;;; cow-mode-test.el ends here
