helm repo add charts https://mirror.example:8002/ --ca-file /etc/ferry/ca.pem
