module ferry/goflate

go 1.19
