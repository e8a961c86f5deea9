" cowdsl scenarios
autocmd BufRead,BufNewFile *.cow setfiletype cow
