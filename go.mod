module github.com/qodwatch/qodwatch

go 1.26
